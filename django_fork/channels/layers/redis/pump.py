"""
The pumps: the background tasks that own the blocking receives.

A blocking pop is never cancelled while Redis may be answering it: each
(event loop, shard, family) has a pump that owns a blocking connection and
hands what it pops to the layer (RedisChannelLayer._on_element, _on_entry),
which gives it to a waiting receive() or keeps it for the next one.
Cancelling receive() only unregisters its waiter. A pump is stopped by
pushing a token onto its private wake key, never by cancelling it. A
connection failure never escapes a blocking receive: the pump logs it,
retries with backoff, and carries on when Redis is back.
"""

import asyncio
import logging
import time

from redis.exceptions import ResponseError

from .connection import (
    CONNECTION_ERRORS,
    async_script_on,
    server_version,
    timed,
)
from .scripts import CONSUMER_GROUP, ENSURE_GROUPS, READ_FIRST, WAKE

logger = logging.getLogger("django_fork.channels.layers")


#: After a batch pop that found nothing, try one again only after this many
#: blocking pops that could have left more behind.
BATCH_RETRY = 16


def cancelling():
    """Return True if the current task was asked to cancel (Python 3.11+)."""
    task = asyncio.current_task()
    return task is not None and getattr(task, "cancelling", lambda: 0)() > 0


class Pump:
    """
    The blocking receive of one (event loop, shard, family): "list" pops
    shared lists with BLPOP, "owned" pops the process-specific and
    single-reader lists of this process with BLPOP, "stream" reads
    at-least-once streams with XREADGROUP.
    """

    def __init__(self, state, shard, family, number):
        self.state = state
        self.layer = state.layer
        self.loop = state.loop
        self.shard = shard
        self.family = family
        # key -> number of waiters wanting it, and the number of waiters
        # (guarded by layer._lock).
        self.keys = {}
        self.receives = 0
        # key -> monotonic time until which a key nobody waits on is popped.
        self.linger = {}
        # Keys of the blocking call under way, or None.
        self.in_flight = None
        self.event = asyncio.Event()
        self.task = None
        self.closing = False
        self.waking = False
        self.ready = False
        self.burst = False
        # Whether the server has BLMPOP (Redis 7.0+), found by _setup(), and
        # the count of the latest.
        self.blmpop = False
        self.count = 1
        # Whether the latest batch found messages; full BLMPOPs since one
        # that found none.
        self.batch_found = True
        self.batch_skipped = 0
        self.probing = False
        self.wake_key = "%s:w:%s:%d" % (
            self.layer.prefix,
            self.layer.client_prefix,
            number,
        )
        # Blocking calls run on their own connection, allowed to wait longer
        # than the block time; failures are retried here, not by redis-py.
        self._wake_bytes = self.wake_key.encode()
        self.connection = state.link(shard).new_connection()

    async def call(self, *args):
        """Run a command on the pump's own connection."""
        if not self.connection.is_connected:
            # As in Link._run().
            await self.connection.connect()
        await self.connection.send_command(*args)
        return await self.connection.read_response()

    async def script(self, script, args):
        return await async_script_on(self.call, script, args)

    def kick(self):
        """Make sure the pump serves the keys wanted now (in its loop)."""
        if self.closing:
            return
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self.run())
        self.event.set()
        if self.in_flight is not None:
            with self.layer._lock:
                in_flight = self.in_flight
                stale = in_flight is not None and any(
                    key not in in_flight for key in self.keys
                )
            if stale:
                self.wake()

    def wake(self):
        """End the blocking call under way, without cancelling it."""
        if not self.waking and not self.closing:
            self.waking = True
            self.state.spawn(self._wake())

    async def _wake(self):
        try:
            args = [
                self.layer.prefix,
                self.wake_key,
                "1" if self.family == "stream" else "0",
            ]
            await self.state.command(self.shard, lambda link: link.script(WAKE, args))
        except CONNECTION_ERRORS:
            pass
        finally:
            self.waking = False

    async def run(self):
        backoff = 0.1
        reclaim_at = 0.0
        ensured = set()
        while not self.closing:
            if cancelling():
                # A cancellation that redis-py turned into a return value or
                # an error still ends the pump.
                raise asyncio.CancelledError
            with self.layer._lock:
                wanted = bool(self.keys)
            if not wanted:
                self.event.clear()
                await self.event.wait()
                continue
            reply = None
            try:
                # Preparations await Redis; each one starts the loop over so
                # that the blocking call below uses the keys wanted by then.
                if not self.ready:
                    await self._setup()
                    ensured.clear()
                    continue
                if self.family == "stream":
                    with self.layer._lock:
                        missing = [key for key in self.keys if key not in ensured]
                    if missing:
                        await self._ensure_groups(missing)
                        ensured.update(missing)
                        continue
                    if time.monotonic() >= reclaim_at:
                        reclaim_at = time.monotonic() + self.layer.reclaim_interval
                        with self.layer._lock:
                            keys = list(self.keys)
                        await self._reclaim(keys)
                        continue
                    reply = await self._read_first()
                elif self.burst:
                    # Messages are coming in: while several receives wait,
                    # take one message for each in a single round trip
                    # (BLMPOP does that itself for receives on one list).
                    self.burst = await self._take_batch()
                    if self.burst:
                        continue
                if not reply:
                    reply = await self._block(reclaim_at)
            except CONNECTION_ERRORS as e:
                with self.layer._lock:
                    self.in_flight = None
                self.ready = False
                if self.closing:
                    break
                if cancelling():
                    # redis-py closes the connection of a cancelled command,
                    # which can raise an error in place of CancelledError.
                    raise asyncio.CancelledError
                self.shard.failed(e, "receives wait and retry")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.layer.max_backoff)
                continue
            except ResponseError as e:
                with self.layer._lock:
                    self.in_flight = None
                self.ready = False
                if "NOGROUP" in str(e):
                    # A stream or its group vanished (expiry, flush, restart):
                    # _setup() and _ensure_groups() make them again.
                    await asyncio.sleep(0.05)
                    continue
                logger.error("Redis shard %s refused a receive: %s", self.shard.name, e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.layer.max_backoff)
                continue
            except Exception:
                # A bug must not end the receives of the process for good.
                with self.layer._lock:
                    self.in_flight = None
                self.ready = False
                logger.exception("Receive from Redis shard %s failed.", self.shard.name)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.layer.max_backoff)
                continue
            with self.layer._lock:
                self.in_flight = None
            backoff = 0.1
            self.shard.succeeded()
            if reply:
                try:
                    if self.family != "stream":
                        key, elements = reply if self.blmpop else (reply[0], reply[1:])
                        if key != self._wake_bytes:
                            self.burst = not self.blmpop or self._batch_worth(
                                len(elements)
                            )
                            for element in elements:
                                self.layer._on_element(self, key, element)
                    else:
                        self._on_stream_reply(reply)
                except Exception:
                    logger.exception(
                        "Dropped what Redis shard %s answered.", self.shard.name
                    )
                # Let the receives just handed a message run before the next
                # blocking call is written: a reply reaches its client, a
                # request its view, one socket write sooner.
                await asyncio.sleep(0)

    def _batch_worth(self, popped):
        """
        Return whether a batch should follow a BLMPOP that popped this many:
        not when it popped fewer than it could (its list is empty), and,
        after a batch that took messages of fewer than two lists, only once
        in BATCH_RETRY times: messages of one list, the next BLMPOP takes
        with one command, not one LPOP per waited-on list.
        """
        if popped < self.count:
            return False
        if not self.batch_found:
            self.batch_skipped += 1
            if self.batch_skipped < BATCH_RETRY:
                return False
            self.batch_skipped = 0
        self.probing = True
        return True

    async def _take_batch(self):
        """Pop, without blocking, one message per waiting receive."""
        with self.layer._lock:
            wanted = [(key, count) for key, count in self.keys.items() if count]
            receives = self.receives
        wants = sum(count for _, count in wanted)
        if wants < 2 or wants > receives:
            # Not for a receive that waits on several of the lists: it would
            # get a message of each, when the blocking pop takes one of the
            # first list that has any, in the order of its channels.
            return False
        if self.blmpop and len(wanted) < 2:
            # BLMPOP takes several messages of one list itself.
            return False
        # Plain LPOPs in one round trip, not a script: Lua would copy every
        # large message it returns.
        connection = self.connection
        await connection.send_packed_command(
            connection.pack_commands([("LPOP", key, count) for key, count in wanted])
        )
        lists = 0
        for key, _ in wanted:
            elements = await connection.read_response()
            if elements:
                lists += 1
            for element in elements or ():
                self.layer._on_element(self, key.encode(), element)
        if self.probing:
            # The first batch after a blocking pop tells whether batches
            # pay in this pump's traffic: they do when they take messages
            # of two lists or more.
            self.batch_found = lists >= 2
            self.probing = False
        # Go on with batches while they pay: with BLMPOP, while they take
        # messages of several lists.
        return lists >= 2 if self.blmpop else lists > 0

    async def _read_first(self):
        """
        Read the next entry of the first of several streams wanted, in
        order, that has one (read_first.lua); return None for one stream,
        which the blocking read serves as well.
        """
        with self.layer._lock:
            keys = list(self.keys)
        if len(keys) < 2:
            return None
        return await self.script(
            READ_FIRST, [self.layer.prefix, self.layer.client_prefix, *keys]
        )

    def _block(self, reclaim_at):
        """Start the blocking call on the keys wanted now; return it."""
        with self.layer._lock:
            if self.linger:
                now = time.monotonic()
                for key, until in list(self.linger.items()):
                    if self.keys.get(key):
                        del self.linger[key]
                    elif until <= now:
                        del self.linger[key]
                        self.keys.pop(key, None)
            keys = list(self.keys)
            # As many messages as the receives waiting on any one key: a
            # shared channel's messages beyond that are left for others.
            count = self.count = min(
                (n for n in self.keys.values() if n > 0), default=1
            )
            self.in_flight = frozenset(keys)
        if self.family != "stream" and self.blmpop:
            return self.call(
                "BLMPOP",
                self.layer.block_timeout,
                len(keys) + 1,
                *keys,
                self.wake_key,
                "LEFT",
                "COUNT",
                count,
            )
        if self.family != "stream":
            return self.call("BLPOP", *keys, self.wake_key, self.layer.block_timeout)
        block = min(self.layer.block_timeout, max(0.01, reclaim_at - time.monotonic()))
        return self.call(
            "XREADGROUP",
            "GROUP",
            CONSUMER_GROUP,
            self.layer.client_prefix,
            "COUNT",
            1,
            "BLOCK",
            int(block * 1000),
            "STREAMS",
            *keys,
            self.wake_key,
            *([">"] * (len(keys) + 1)),
        )

    async def _setup(self):
        self.shard.set_clock(*await timed(self.call("TIME")))
        if self.family == "stream":
            await self._ensure_groups([self.wake_key])
        else:
            version = server_version(await self.call("INFO", "server"))
            self.blmpop = self.layer._use_blmpop(version)
        self.ready = True

    async def _ensure_groups(self, keys):
        await self.script(
            ENSURE_GROUPS, [self.layer.prefix, self.layer.stream_ttl_ms, *keys]
        )

    async def _reclaim(self, keys):
        """Claim messages whose consumer did not ack in time; True if any."""
        claimed = False
        for key in keys:
            reply = await self.call(
                "XAUTOCLAIM",
                key,
                CONSUMER_GROUP,
                self.layer.client_prefix,
                int(self.layer.visibility_timeout * 1000),
                "0-0",
                "COUNT",
                1,
            )
            entries = reply[1] if reply else None
            for entry in entries or ():
                if entry and entry[1]:
                    logger.info(
                        "Redelivering message %s of %s: not acknowledged within "
                        "%s s.",
                        entry[0].decode(),
                        key,
                        self.layer.visibility_timeout,
                    )
                    self.layer._on_entry(self, key.encode(), entry[0], entry[1])
                    claimed = True
        return claimed

    def _on_stream_reply(self, reply):
        wake = self._wake_bytes
        if isinstance(reply, dict):
            # RESP3 answers XREADGROUP with a map of key -> entries.
            reply = reply.items()
        for key, entries in reply:
            if key == wake:
                continue
            for entry_id, fields in entries:
                self.layer._on_entry(self, key, entry_id, fields)

    async def aclose(self):
        self.closing = True
        task = self.task
        if task is not None and not task.done():
            with self.layer._lock:
                busy = self.in_flight is not None
            if busy:
                try:
                    await asyncio.wait_for(self._wake(), 1)
                except (asyncio.TimeoutError, *CONNECTION_ERRORS):
                    pass
                await asyncio.wait({task}, timeout=1)
            self.event.set()
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.connection.disconnect()
