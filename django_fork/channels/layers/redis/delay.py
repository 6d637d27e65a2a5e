"""
Delayed delivery: messages wait in the zset P:d until they are due.
"""

import asyncio
import logging
import secrets
import threading

from redis.exceptions import ResponseError

from .connection import CONNECTION_ERRORS, run_script_sync
from .scripts import DELAY, RELEASE

logger = logging.getLogger("django_fork.channels.layers")


class DelayMixin:
    """send_later(), and the release of due messages."""

    def _delay_args(self, channel, message, delay):
        kind, capacity, targets, _ = self._channel_info(channel)
        body = self.serializer.dumps(message)
        args = [
            self._prefix_arg,
            int(max(0.0, delay) * 1000),
            secrets.token_hex(8),
            kind,
            capacity,
            channel,
            body,
            self._expiry_arg,
        ]
        # The home shard: where the channel's messages go, and its capacity
        # holds.
        return targets[0], args

    async def send_later(self, channel, message, delay):
        """
        Put message on channel in delay seconds. The message waits in Redis
        (zset P:d): every process receiving from the layer, and the sender,
        put due messages on their channels; a full channel's is retried.
        """
        shard, args = self._delay_args(channel, message, delay)
        state, loop = self._state_now()
        if state is None:
            state = await self._new_state(loop)
        await self._call(shard, lambda link: link.script(DELAY, args))
        state.release_delayed()

    def send_later_sync(self, channel, message, delay):
        shard, args = self._delay_args(channel, message, delay)
        self._call_sync(shard, lambda client: run_script_sync(client, DELAY, args))
        timer = threading.Timer(max(0.0, delay), self._release_sync, (shard,))
        timer.daemon = True
        timer.start()

    def _release_sync(self, shard, attempts=100):
        """Release due messages of shard from a timer thread (sync senders)."""
        args = [self._prefix_arg, self._expiry_arg, self._hold_arg]
        try:
            now, due = run_script_sync(shard.sync_client(), RELEASE, args)
        except CONNECTION_ERRORS:
            due = -1
        if 0 <= due - now <= 1000 and attempts > 1:
            # One more is due soon (or a full channel's wait): again then.
            timer = threading.Timer(
                (due - now) / 1000, self._release_sync, (shard, attempts - 1)
            )
            timer.daemon = True
            timer.start()

    async def _release(self, state):
        """Release due delayed messages on every shard until state closes."""
        args = [self._prefix_arg, self._expiry_arg, self._hold_arg]
        while not state.closed:
            wait = 1.0
            state.release_event.clear()
            for shard in self.shards.values():
                try:
                    now, due = await state.command(
                        shard, lambda link: link.script(RELEASE, args)
                    )
                except CONNECTION_ERRORS:
                    continue
                except ResponseError as e:
                    logger.error("Redis shard %s refused a release: %s", shard.name, e)
                    continue
                if due >= 0:
                    wait = min(wait, max(0.0, (due - now) / 1000))
            # asyncio.wait(), not wait_for(): before Python 3.12, wait_for()
            # returns, swallowing a cancellation, if the event is set as the
            # task is cancelled; the loop would then outlive its event loop's
            # shutdown.
            event = asyncio.ensure_future(state.release_event.wait())
            try:
                await asyncio.wait([event], timeout=wait)
            finally:
                event.cancel()
