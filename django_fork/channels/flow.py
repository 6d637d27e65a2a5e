"""
Sends that wait for room: what a full channel does to the interface.

A layer's send() never blocks; it raises ChannelFull. The interface is the
buffer between clients and workers, as a proxy is for an application
server, so a full request channel makes it wait rather than refuse:

- SendQueue lines the senders to one channel up in the order they came, and
  only the first of them retries, with a backoff: a burst of a thousand
  requests costs one retry at a time, not a thousand. A send gives up, with
  ChannelFull, when its own timeout runs out; the bytes the waiting sends
  hold are bounded too, beyond which a send is refused at once.
- Every time a channel has been full, one log line says for how long, how
  many sends waited and how many gave up. The retries count as refusals in
  the layer's "full" figure (manage.py channelstats).
- At most MAX_IN_FLIGHT sends are in progress at once, and a layer that
  reports itself unreachable is retried for UNAVAILABLE_GRACE seconds: a
  burst must not open a thousand connections to the layer's store at once,
  nor take the connection timeouts of a crowded moment for an outage.

Control messages (disconnects, acknowledgements) go through the same line
with a long timeout: they are never dropped for capacity, only once the
state they are about is gone.
"""

import asyncio
import logging
import time
from collections import deque

from django_fork.channels.exceptions import ChannelFull, ChannelLayerUnavailable

logger = logging.getLogger("django_fork.channels.interface")

#: The first retry's delay, and the longest delay between retries (seconds).
FIRST_DELAY = 0.001
MAX_DELAY = 0.05
#: The longest delay between retries of a control message.
CONTROL_MAX_DELAY = 1.0
#: Sends in progress at once, by default: a burst of a thousand clients
#: must not open a thousand connections to the layer's store at once.
MAX_IN_FLIGHT = 16
#: Seconds an unreachable layer is retried before a send gives up: a store
#: that is down is reported within about this long, while a connection that
#: timed out in a burst is not taken for an outage.
UNAVAILABLE_GRACE = 1.0


class _Line:
    """The senders waiting for room on one channel, first come first."""

    def __init__(self):
        self.turns = deque()
        self.since = time.monotonic()
        self.waited = 0
        self.longest = 0.0
        self.gave_up = 0


class SendQueue:
    """
    Send to channels that may be full, waiting for room in turn.

    max_waiting_bytes bounds the bytes that waiting messages hold (their
    size as the caller gives it); None: no bound. max_in_flight bounds the
    sends in progress at once, over all channels.
    """

    def __init__(self, max_waiting_bytes=None, max_in_flight=MAX_IN_FLIGHT):
        self.max_waiting_bytes = max_waiting_bytes
        self.max_in_flight = max_in_flight
        self.waiting_bytes = 0
        self._lines = {}
        # Sends in progress, and the futures of those waiting to start, in
        # the order they came. A plain count, not an asyncio.Semaphore: a
        # send with a slot free, almost every send, costs an increment.
        self._in_flight = 0
        self._slot_waiters = deque()

    async def _send(self, layer, channel, message):
        if self._in_flight >= self.max_in_flight or self._slot_waiters:
            await self._wait_for_slot()
        else:
            self._in_flight += 1
        try:
            await layer.send(channel, message)
        finally:
            self._release_slot()

    async def _wait_for_slot(self):
        """Wait until a send in progress hands this one its slot."""
        slot = asyncio.get_running_loop().create_future()
        self._slot_waiters.append(slot)
        try:
            await slot
        except BaseException:
            if slot.done() and not slot.cancelled():
                # Handed the slot as it was cancelled: pass it on.
                self._release_slot()
            else:
                try:
                    self._slot_waiters.remove(slot)
                except ValueError:
                    pass
            raise

    def _release_slot(self):
        """End a send: hand its slot to the first waiting send, if any."""
        while self._slot_waiters:
            slot = self._slot_waiters.popleft()
            if not slot.done():
                slot.set_result(None)
                return
        self._in_flight -= 1

    def waiting(self, channel=None):
        """Return how many sends wait (for room on channel, or anywhere)."""
        if channel is not None:
            line = self._lines.get(channel)
            return len(line.turns) if line else 0
        return sum(len(line.turns) for line in self._lines.values())

    async def send(self, layer, channel, message, timeout, size=0, control=False):
        """
        Send message on channel; wait for room while it is full, for up to
        timeout seconds. Return the seconds waited. Raise ChannelFull when
        the time runs out or the waiting bytes would pass their bound, and
        ChannelLayerUnavailable when the layer stays unreachable for
        UNAVAILABLE_GRACE seconds (a control message waits that out too, for
        as long as its timeout).
        """
        if channel not in self._lines:
            try:
                await self._send(layer, channel, message)
                return 0.0
            except (ChannelFull, ChannelLayerUnavailable):
                pass
        if (
            not control
            and self.max_waiting_bytes is not None
            and self.waiting_bytes + size > self.max_waiting_bytes
        ):
            raise ChannelFull(channel)
        started = time.monotonic()
        line = self._lines.get(channel)
        if line is None:
            line = self._lines[channel] = _Line()
        turn = asyncio.get_running_loop().create_future()
        line.turns.append(turn)
        if len(line.turns) == 1:
            turn.set_result(None)
        self.waiting_bytes += size
        delivered = False
        try:
            await asyncio.wait_for(asyncio.shield(turn), timeout)
            await self._retry(layer, channel, message, started + timeout, control)
            delivered = True
            return time.monotonic() - started
        except asyncio.TimeoutError:
            raise ChannelFull(channel)
        finally:
            self.waiting_bytes -= size
            self._leave(channel, line, turn, time.monotonic() - started, delivered)

    async def _retry(self, layer, channel, message, deadline, control):
        delay = FIRST_DELAY
        max_delay = CONTROL_MAX_DELAY if control else MAX_DELAY
        unavailable_since = None
        while True:
            try:
                await self._send(layer, channel, message)
                return
            except ChannelFull:
                unavailable_since = None
            except ChannelLayerUnavailable:
                now = time.monotonic()
                if unavailable_since is None:
                    unavailable_since = now
                elif not control and now - unavailable_since > UNAVAILABLE_GRACE:
                    raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise asyncio.TimeoutError
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, max_delay)

    def _leave(self, channel, line, turn, waited, delivered):
        first = line.turns and line.turns[0] is turn
        line.turns.remove(turn)
        line.waited += 1
        line.longest = max(line.longest, waited)
        if not delivered:
            line.gave_up += 1
        if first and line.turns:
            line.turns[0].set_result(None)
        if not line.turns:
            del self._lines[channel]
            logger.warning(
                "Channel %s was full (or unreachable) for %.2f s: %d sends "
                "waited (the longest %.2f s), %d gave up.",
                channel,
                time.monotonic() - line.since,
                line.waited,
                line.longest,
                line.gave_up,
            )


async def send_control(layer, channel, message, timeout):
    """
    Send a control message (a disconnect, an acknowledgement) that must not
    be lost: retry while the channel is full or the layer unreachable, for up
    to timeout seconds. Return whether it was delivered.

    For senders without a SendQueue of their own (workers): they send few
    control messages at a time, so retrying each on its own costs little.
    """
    deadline = time.monotonic() + timeout
    delay = FIRST_DELAY
    while True:
        try:
            await layer.send(channel, message)
            return True
        except (ChannelFull, ChannelLayerUnavailable):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, CONTROL_MAX_DELAY)


def send_control_sync(layer, channel, message, timeout):
    """send_control() from a thread: the same retries, with the sync send."""
    deadline = time.monotonic() + timeout
    delay = FIRST_DELAY
    while True:
        try:
            layer.send_sync(channel, message)
            return True
        except (ChannelFull, ChannelLayerUnavailable):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, CONTROL_MAX_DELAY)
