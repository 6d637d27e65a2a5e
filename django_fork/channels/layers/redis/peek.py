"""
Looking at what waits on a channel without taking it.
"""

import asyncio
import time

from django_fork.channels.layers.serializers import DecodeError

from .scripts import CONSUMER_GROUP


class PeekMixin:
    """peek(): copies of what waits, in Redis and in this process."""

    def _peek_local(self, channel):
        now = time.monotonic()
        with self._lock:
            items = list(self._buffer.get(channel, ()))
        return [
            (0, self.serializer.loads(self.serializer.dumps(item.message)))
            for item in items
            if item.deadline > now
        ]

    def _peek_parse(self, channel, replies, shards):
        """Return [(sent ms, message)] from what LRANGE/XRANGE returned."""
        found = []
        for shard, reply in zip(shards, replies):
            now = shard.server_ms()
            kind = self._kind(channel)
            for element in reply or ():
                if kind == "q":
                    entry_id, fields = element
                    sent = int(entry_id.split(b"-")[0])
                    if isinstance(fields, dict):
                        body = fields.get(b"m")
                    else:
                        body = dict(zip(fields[::2], fields[1::2])).get(b"m")
                else:
                    head, _, body = element.partition(b":")
                    sent = int(head)
                    if kind == "p":
                        owner, _, body = body.partition(b":")
                        if owner.decode() != channel:
                            continue
                if sent + self.expiry_ms <= now or body is None:
                    continue
                try:
                    found.append((sent, self.serializer.loads(body)))
                except DecodeError:
                    continue
        return found

    def _peek_plan(self, channel):
        """Return [(shard, command args)] reading what waits on channel."""
        self._channel_info(channel)
        plan = []
        for shard, _, key in self._keys(channel):
            if self._kind(channel) == "q":
                # Only what the consumer group has not handed out yet.
                plan.append((shard, ("XRANGE", key, "-", "+"), key))
            else:
                plan.append((shard, ("LRANGE", key, 0, -1), key))
        return plan

    @staticmethod
    def _peek_undelivered(entries, groups):
        last = None
        for group in groups or ():
            if isinstance(group, dict):
                info = group
            else:
                info = dict(zip(group[::2], group[1::2]))
            name = info.get("name", info.get(b"name"))
            if name in (CONSUMER_GROUP, CONSUMER_GROUP.encode()):
                last = info.get("last-delivered-id", info.get(b"last-delivered-id"))
        if last is None:
            return entries
        if isinstance(last, str):
            last = last.encode()
        key = tuple(int(part) for part in last.split(b"-"))
        return [
            entry
            for entry in entries
            if tuple(int(part) for part in entry[0].split(b"-")) > key
        ]

    def _peek_result(self, channel, found, limit):
        found.sort(key=lambda pair: pair[0])
        messages = [message for _, message in found]
        return messages if limit is None else messages[:limit]

    async def peek(self, channel, limit=None):
        """Return copies of what waits on channel, oldest first; take none."""
        plan = self._peek_plan(channel)
        local = self._peek_local(channel)

        async def read(shard, command, key):
            async def operation(link):
                entries = await link.call(*command)
                if command[0] == "XRANGE" and entries:
                    groups = await link.call("XINFO", "GROUPS", key)
                    entries = self._peek_undelivered(entries, groups)
                return entries

            return await self._call(shard, operation)

        replies = await asyncio.gather(*(read(*step) for step in plan))
        found = local + self._peek_parse(channel, replies, [s for s, _, _ in plan])
        return self._peek_result(channel, found, limit)

    def peek_sync(self, channel, limit=None):
        plan = self._peek_plan(channel)
        local = self._peek_local(channel)
        replies = []
        for shard, command, key in plan:

            def operation(client, command=command, key=key):
                entries = client.execute_command(*command)
                if command[0] == "XRANGE" and entries:
                    groups = client.execute_command("XINFO", "GROUPS", key)
                    entries = self._peek_undelivered(entries, groups)
                return entries

            replies.append(self._call_sync(shard, operation))
        found = local + self._peek_parse(channel, replies, [s for s, _, _ in plan])
        return self._peek_result(channel, found, limit)
