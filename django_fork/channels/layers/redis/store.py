"""
The "store" extension: values kept under keys, on the layer's connections.

Each value lives on its key's shard of the ring, serialized (and encrypted)
as messages are, with the timeout as its expiry. A sync call runs on the
calling thread's own connection to that shard, an async one on the event
loop's: a worker thread storing a task's result builds no client.
"""

from django_fork.channels.exceptions import ChannelLayerUnavailable
from django_fork.channels.layers.serializers import DecodeError

from .connection import CONNECTION_ERRORS


class StoreMixin:
    """store_set(), store_add(), store_swap(), store_get()."""

    def _store_plan(self, key, value=None, timeout=None):
        """Return (shard, Redis key, body, expiry in ms)."""
        if not isinstance(key, str) or not key:
            raise ValueError("A store key must be a non-empty str, not %r." % key)
        shard = self._single or self.shards[self.ring.get(key)]
        name = "%s:v:%s" % (self.prefix, key)
        if value is None:
            return shard, name, None, None
        body = self.serializer.dumps(self.copy_message(value))
        return shard, name, body, max(1, int(timeout * 1000))

    def _stored_value(self, body):
        if body is None:
            return None
        try:
            return self.serializer.loads(body)
        except DecodeError:
            # Written with a key that is no longer listed: as good as gone.
            return None

    def _store_sync(self, shard, *commands):
        try:
            replies = shard.sync_pipeline(*commands)
        except CONNECTION_ERRORS as e:
            shard.failed(e, "commands fail until it is back")
            raise ChannelLayerUnavailable(
                "Redis shard %s is unreachable (%s)." % (shard.name, e)
            ) from e
        shard.succeeded()
        return replies

    async def _store_async(self, shard, *commands):
        return await self._call(shard, lambda link: link.pipeline(*commands))

    async def store_set(self, key, value, timeout):
        shard, name, body, ms = self._store_plan(key, value, timeout)
        await self._store_async(shard, ("SET", name, body, "PX", ms))

    def store_set_sync(self, key, value, timeout):
        shard, name, body, ms = self._store_plan(key, value, timeout)
        self._store_sync(shard, ("SET", name, body, "PX", ms))

    async def store_add(self, key, value, timeout):
        shard, name, body, ms = self._store_plan(key, value, timeout)
        [reply] = await self._store_async(shard, ("SET", name, body, "PX", ms, "NX"))
        return reply is not None

    def store_add_sync(self, key, value, timeout):
        shard, name, body, ms = self._store_plan(key, value, timeout)
        [reply] = self._store_sync(shard, ("SET", name, body, "PX", ms, "NX"))
        return reply is not None

    # GET then SET in one round trip, rather than SET ... GET, which needs
    # Redis 6.2.

    async def store_swap(self, key, value, timeout):
        shard, name, body, ms = self._store_plan(key, value, timeout)
        previous, _ = await self._store_async(
            shard, ("GET", name), ("SET", name, body, "PX", ms)
        )
        return self._stored_value(previous)

    def store_swap_sync(self, key, value, timeout):
        shard, name, body, ms = self._store_plan(key, value, timeout)
        previous, _ = self._store_sync(
            shard, ("GET", name), ("SET", name, body, "PX", ms)
        )
        return self._stored_value(previous)

    async def store_get(self, key):
        shard, name, _, _ = self._store_plan(key)
        [body] = await self._store_async(shard, ("GET", name))
        return self._stored_value(body)

    def store_get_sync(self, key):
        shard, name, _, _ = self._store_plan(key)
        [body] = self._store_sync(shard, ("GET", name))
        return self._stored_value(body)
