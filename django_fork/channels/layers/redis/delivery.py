"""
What pumps pop, on its way to a receive(): waiters and the local buffer.

A popped message goes to a receive() waiting for its channel or, when none
waits, to a buffer the next receive() reads first. The buffer is bounded by
the capacities: the depth of a process-specific or single-reader channel
counts a message until it is handed out or dropped here. Ordinary messages
nobody here received for RETURN_AFTER seconds are put back for others.
"""

import asyncio
import collections
import logging
import time

from django_fork.channels.layers.base import discard_waiter
from django_fork.channels.layers.serializers import DecodeError
from django_fork.channels.names import stats_name

from .connection import CONNECTION_ERRORS

logger = logging.getLogger("django_fork.channels.layers")


#: Seconds a message popped for a receive() that went away waits in this
#: process before it is put back for other consumers.
RETURN_AFTER = 1.0

#: Seconds a process keeps popping its process-specific lists after the last
#: receive() on them.
OWNED_LINGER = 60

#: The same for a single-reader list: long enough for the next receive() of a
#: stream (a body in chunks), short enough that the keys of many finished
#: streams do not lengthen every blocking pop.
SINGLE_READER_LINGER = 0.1


class Waiter:
    """A receive() waiting for a message on one or more channels."""

    __slots__ = ("channels", "loop", "future", "result", "routes")

    def __init__(self, channels, loop):
        self.channels = channels
        self.loop = loop
        self.future = loop.create_future()
        self.result = None
        # (pump, key) pairs this waiter keeps wanted.
        self.routes = []


class Item:
    """A popped message waiting in this process for a receive()."""

    __slots__ = ("message", "deadline", "token", "shard", "raw", "since", "depth")

    def __init__(self, message, deadline, token=None, shard=None, raw=None, depth=None):
        self.message = message
        self.deadline = deadline
        # (shard, stream key, entry id) of an at-least-once message.
        self.token = token
        # Shard and raw element of an ordinary message, to put it back.
        self.shard = shard
        self.raw = raw
        self.since = time.monotonic()
        # The key of the depth to lower once the message is handed out or
        # dropped (a process-specific or single-reader channel's).
        self.depth = depth


def resolve(future):
    if not future.done():
        future.set_result(None)


class DeliveryMixin:
    """Hand popped messages to receives; keep and put back the rest."""

    def _take_buffered(self, channels):
        if not self._buffer:
            return None
        now = time.monotonic()
        for channel in channels:
            items = self._buffer.get(channel)
            while items:
                item = items.popleft()
                if item.deadline > now:
                    if not items:
                        del self._buffer[channel]
                    return channel, item
                if item.depth is not None:
                    self._book_depths[item.depth] += 1
            if items is not None:
                del self._buffer[channel]
        return None

    def _register(self, waiter, state):
        pumps = []
        for channel in waiter.channels:
            self._waiters.setdefault(channel, collections.deque()).append(waiter)
            for shard, family, key in self._keys(channel):
                pump = state.pump(shard, family)
                pump.keys[key] = pump.keys.get(key, 0) + 1
                waiter.routes.append((pump, key))
                if pump not in pumps:
                    pumps.append(pump)
        for pump in pumps:
            pump.receives += 1
        return pumps

    def _forget_waiter(self, waiter, cancelled=False):
        """Unregister waiter; return the pumps to wake (lock held)."""
        discard_waiter(self._waiters, waiter)
        stale = []
        for pump in {pump for pump, _ in waiter.routes}:
            pump.receives -= 1
        for pump, key in waiter.routes:
            left = pump.keys.get(key, 0) - 1
            if left > 0:
                pump.keys[key] = left
                continue
            if self._owned(key):
                # Every message of a process-specific or single-reader list
                # is this process's: keep popping it for a while, so that a
                # reply is usually here before its receive() is called.
                pump.keys[key] = 0
                pump.linger[key] = time.monotonic() + (
                    OWNED_LINGER
                    if key.startswith(self._p_prefix_str)
                    else SINGLE_READER_LINGER
                )
                continue
            pump.keys.pop(key, None)
            # A cancelled receive leaves a blocking pop under way: end it,
            # so that it does not take messages nobody here wants.
            if (
                cancelled
                and pump.in_flight is not None
                and key in pump.in_flight
                and pump not in stale
            ):
                stale.append(pump)
        waiter.routes = []
        return stale

    def _owned(self, key):
        return key.startswith(self._p_prefix_str) or "?" in key

    def _hand_out(self, channel, item, state):
        if item.token is not None:
            with self._lock:
                self._unacked[id(item.message)] = (
                    item.message,
                    item.token,
                    time.monotonic() + self.visibility_timeout,
                )
        elif item.depth is not None:
            with self._lock:
                self._book_depths[item.depth] += 1
                pending = self._book_depths[item.depth]
            if pending * 2 >= self.get_capacity(channel):
                # A channel that turns over half its capacity before the
                # bookkeeping is written would look full: write it now.
                state.spawn(self._flush_async(state))
            elif not state.flush_scheduled:
                self._schedule_flush(state)
        return channel, item.message

    def _on_element(self, pump, key, element):
        """Handle an element BLPOP took from key (both bytes)."""
        shard = pump.shard
        sent, _, rest = element.partition(b":")
        if key.startswith(self._p_prefix):
            channel, _, body = rest.partition(b":")
            channel = channel.decode()
            name = key[len(self._p_prefix) :].decode()
            raw = None
            depth = (shard.name, name, channel)
        else:
            channel = key[len(self._c_prefix) :].decode()
            name = stats_name(channel)
            body = rest
            raw = element
            depth = (shard.name, None, channel) if "?" in channel else None
        with self._lock:
            self._book_received[shard.name, name] += 1
            if raw is None and self._discarded and channel in self._discarded:
                # For a closed socket: dropped, its depth handed back.
                self._book_depths[depth] += 1
                discarded = True
            else:
                discarded = False
        if not pump.state.flush_scheduled:
            self._schedule_flush(pump.state)
        if discarded:
            return
        remaining = int(sent) + self.expiry_ms - shard.server_ms()
        message = self._decode(channel, body) if remaining > 0 else None
        if message is None:
            if depth is not None:
                with self._lock:
                    self._book_depths[depth] += 1
            return
        item = Item(
            message, time.monotonic() + remaining / 1000, None, shard, raw, depth
        )
        self._deliver(channel, item, pump.state)

    def _decode(self, channel, body):
        """Return the message in body, or None (logged) if it can't be read."""
        try:
            return self.serializer.loads(body)
        except DecodeError as e:
            logger.error("Dropped a message on %s that cannot be read: %s", channel, e)
            return None

    async def discard_channel(self, channel):
        """
        Forget a process-specific channel of this process: drop what this
        process holds of it and, for the layer's expiry, what its pumps pop
        for it later, handing their depths back.
        """
        if not self._discard_buffered(channel):
            return
        state = self._states.get(asyncio.get_running_loop())
        if state is not None and not state.flush_scheduled:
            self._schedule_flush(state)

    def discard_channel_sync(self, channel):
        if self._discard_buffered(channel):
            state = self._running_state()
            if state is not None:
                state.loop.call_soon_threadsafe(self._schedule_flush, state)
            else:
                self._flush_sync()

    def _discard_buffered(self, channel):
        """
        Mark channel discarded and drop what is buffered for it, booking
        the depths to hand back; return whether anything was buffered.
        """
        self.validate_channel_name(channel)
        if "!" not in channel:
            return False
        with self._lock:
            self._discarded.add(channel)
            items = self._buffer.pop(channel, ())
            for item in items:
                if item.depth is not None:
                    self._book_depths[item.depth] += 1
        return bool(items)

    def _deliver(self, channel, item, state):
        waiter = None
        with self._lock:
            for candidate in self._waiters.get(channel, ()):
                if candidate.result is None and not candidate.future.done():
                    waiter = candidate
                    break
            if waiter is not None:
                waiter.result = (channel, item)
                self._forget_waiter(waiter)
            else:
                self._buffer.setdefault(channel, collections.deque()).append(item)
        if waiter is None:
            self._schedule_sweep(state)
        elif waiter.loop is state.loop:
            resolve(waiter.future)
        else:
            waiter.loop.call_soon_threadsafe(resolve, waiter.future)

    def _schedule_sweep(self, state):
        if not state.sweep_scheduled and not state.closed:
            state.sweep_scheduled = True
            state.later(RETURN_AFTER, lambda: self._sweep(state))

    async def _sweep(self, state, older_than=RETURN_AFTER):
        """
        Drop expired messages waiting here, and put back ordinary messages
        nobody here received for a while, for other consumers.
        """
        state.sweep_scheduled = False
        now = time.monotonic()
        returned = []
        left = False
        with self._lock:
            for channel, items in list(self._buffer.items()):
                keep = collections.deque()
                # Once one goes back, the newer ones go too: a message left
                # here would come out before it.
                going = False
                for item in items:
                    if item.deadline <= now:
                        if item.depth is not None:
                            self._book_depths[item.depth] += 1
                        continue
                    if item.raw is not None and (
                        going or now - item.since >= older_than
                    ):
                        going = True
                        returned.append((channel, item))
                    else:
                        keep.append(item)
                        left = True
                if keep:
                    self._buffer[channel] = keep
                else:
                    del self._buffer[channel]
        # Each channel's in one LPUSH, the newest first: the order is kept
        # even if a pump pops the head again at once. A message put back
        # keeps its place in its channel's depth.
        by_channel = {}
        for channel, item in returned:
            by_channel.setdefault((channel, item.shard), []).append(item)
        for (channel, shard), items in by_channel.items():
            key = "%s:c:%s" % (self.prefix, channel)
            commands = [
                ("LPUSH", key, *[item.raw for item in reversed(items)]),
                ("PEXPIRE", key, self.expiry_ms),
            ]
            if items[0].depth is not None:
                counter = "%s:n:%s" % (self.prefix, channel)
                commands.append(("PEXPIRE", counter, self.expiry_ms))
            try:
                await state.command(
                    shard, lambda link, commands=commands: link.pipeline(*commands)
                )
            except CONNECTION_ERRORS as e:
                logger.warning(
                    "Lost %d messages of %s putting them back: %s",
                    len(items),
                    channel,
                    e,
                )
        if left:
            self._schedule_sweep(state)
        with self._lock:
            dropped = bool(self._book_depths)
        if dropped:
            self._schedule_flush(state)
