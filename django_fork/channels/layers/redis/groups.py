"""
Groups, and flushing the layer's keys.
"""

import asyncio

from .connection import run_script_sync
from .scripts import GROUP_ADD, GROUP_SEND


class GroupsMixin:
    """group_add(), group_discard(), group_send(), flush()."""

    def _group_add_args(self, group, channel):
        self.validate_group_name(group)
        self.validate_channel_name(channel)
        return self._home(channel), [
            self.prefix,
            group,
            channel,
            self._kind(channel),
            self.get_capacity(channel),
            int(self.group_expiry * 1000),
        ]

    async def group_add(self, group, channel):
        shard, args = self._group_add_args(group, channel)
        await self._call(shard, lambda link: link.script(GROUP_ADD, args))

    def group_add_sync(self, group, channel):
        shard, args = self._group_add_args(group, channel)
        self._call_sync(shard, lambda c: run_script_sync(c, GROUP_ADD, args))

    def _group_discard_args(self, group, channel):
        self.validate_group_name(group)
        self.validate_channel_name(channel)
        return self._home(channel), "%s:g:%s" % (self.prefix, group)

    async def group_discard(self, group, channel):
        shard, key = self._group_discard_args(group, channel)
        await self._call(shard, lambda link: link.call("HDEL", key, channel))

    def group_discard_sync(self, group, channel):
        shard, key = self._group_discard_args(group, channel)
        self._call_sync(shard, lambda c: c.execute_command("HDEL", key, channel))

    def _group_send_args(self, group, message):
        self.validate_group_name(group)
        body = self.serializer.dumps(message)
        return [self.prefix, group, body, self.expiry_ms, self.hold_ms]

    async def group_send(self, group, message):
        """Send to every member: one script per shard, all shards at once."""
        args = self._group_send_args(group, message)
        await asyncio.gather(
            *(
                self._call(shard, lambda link: link.script(GROUP_SEND, args))
                for shard in self.shards.values()
            )
        )

    def group_send_sync(self, group, message):
        args = self._group_send_args(group, message)
        for shard in self.shards.values():
            self._call_sync(shard, lambda c: run_script_sync(c, GROUP_SEND, args))

    def _forget_local(self):
        with self._lock:
            self._buffer.clear()
            self._unacked.clear()
            self._book_received.clear()
            self._book_sent.clear()
            self._book_depths.clear()
            self._book_seen.clear()
            self._discarded.clear()

    async def flush(self):
        """Delete every key under this layer's prefix on every shard."""
        self._forget_local()
        match = "%s:*" % self.prefix

        async def flush_shard(link):
            scan = link.client.scan_iter(match=match, count=1000)
            async for batch in batches(scan):
                await link.call("UNLINK", *batch)

        await asyncio.gather(
            *(self._call(shard, flush_shard) for shard in self.shards.values())
        )

    def flush_sync(self):
        self._forget_local()
        match = "%s:*" % self.prefix

        def flush_shard(client):
            batch = []
            for key in client.scan_iter(match=match, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    client.unlink(*batch)
                    batch = []
            if batch:
                client.unlink(*batch)

        for shard in self.shards.values():
            self._call_sync(shard, flush_shard)


async def batches(iterator, size=1000):
    batch = []
    async for item in iterator:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
