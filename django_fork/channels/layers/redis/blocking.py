"""
Blocking receives from a thread: a worker's threads wait in Redis.

A thread that serves one message at a time (a worker's receiving thread)
pops its next message with BLPOP on its own connection and gets it in one
round trip, with no event loop, pump or waiter between Redis and it: the
element BLPOP returns is the thread's, so nothing is popped for a receive
that went away and nothing needs putting back. It serves ordinary channels
on a single shard; process-specific and single-reader channels (whose
owner's pumps pop them ahead of its receives), at-least-once streams and
channels spread over several shards go through the event loop's receive.
"""

import time

from django_fork.channels.exceptions import ChannelLayerUnavailable
from django_fork.channels.names import stats_name

from .book import FLUSH_DELAY
from .connection import CONNECTION_ERRORS


class BlockingReceiveMixin:
    """receive_any_sync() with a BLPOP in the calling thread."""

    def can_receive_sync(self, channels):
        if self._single is None:
            return False
        info = self._info
        for channel in channels:
            # _channel_info() validates the name, once per channel.
            kind = (info.get(channel) or self._channel_info(channel))[0]
            if kind != b"c" or "?" in channel:
                return False
        return True

    def _receive_blocking(self, channels, timeout):
        """
        Return (channel, message) popped in this thread, waiting at most
        timeout seconds (None: until one comes); raise TimeoutError when
        none came, ChannelLayerUnavailable when Redis cannot be reached.
        """
        shard = self._single
        keys = [self._c_prefix + channel.encode() for channel in channels]
        deadline = None if timeout is None else time.monotonic() + timeout
        # Below socket_timeout: a read that times out drops the connection,
        # and with it an element Redis may be sending.
        longest = max(0.01, min(self.block_timeout, self.socket_timeout / 2))
        self._note_consumer_in_thread(channels)
        while True:
            if deadline is None:
                block = longest
            else:
                block = min(longest, deadline - time.monotonic())
                if block <= 0:
                    raise TimeoutError("No message within %s seconds." % timeout)
                # BLPOP's timeout 0 would wait for ever.
                block = max(block, 0.001)
            try:
                if not shard.clock_measured:
                    before = time.time() * 1000
                    reply = shard.sync_call("TIME")
                    shard.set_clock(before, reply, time.time() * 1000)
                reply = shard.sync_call("BLPOP", *keys, "%.3f" % block)
            except CONNECTION_ERRORS as e:
                shard.failed(e, "receives wait and retry")
                raise ChannelLayerUnavailable(
                    "Cannot receive: Redis shard %s is unreachable (%s)."
                    % (shard.name, e)
                ) from e
            shard.succeeded()
            if reply is None:
                self._book_from_thread(idle=True)
                continue
            key, element = reply
            channel = key[len(self._c_prefix) :].decode()
            sent, _, body = element.partition(b":")
            with self._lock:
                self._book_received[shard.name, stats_name(channel)] += 1
            self._book_from_thread()
            if int(sent) + self.expiry_ms - shard.server_ms() <= 0:
                continue
            message = self._decode(channel, body)
            if message is not None:
                return channel, message

    def _book_from_thread(self, idle=False):
        """
        Have the counts of a receive in this thread written soon: by an
        event loop of the layer when one runs (a worker's), else from here,
        at most every FLUSH_DELAY seconds, and when the thread goes idle.
        """
        state = self._running_state()
        if state is not None:
            if not state.flush_scheduled:
                try:
                    state.loop.call_soon_threadsafe(self._schedule_flush, state)
                    return
                except RuntimeError:
                    # The loop closed since.
                    pass
            else:
                return
        now = time.monotonic()
        if idle or now >= self._thread_flush_at:
            self._thread_flush_at = now + FLUSH_DELAY
            with self._lock:
                pending = bool(
                    self._book_received or self._book_sent or self._book_seen
                )
            if pending:
                self._flush_sync()

    def _note_consumer_in_thread(self, channels):
        """_note_consumer() for a receive in a thread."""
        if self._note_consumer_ids(channels, self._thread_owner()):
            self._book_from_thread()
