"""
Bookkeeping written off the hot path.

Sends and receives count into local counters (stats.py), and the owner of a
process-specific or single-reader channel books the depth it hands back when
a message is handed out or dropped; an event loop writes them to Redis in
one script per shard (lua/book.lua) within FLUSH_DELAY seconds.
"""

import asyncio
import collections
import logging

from .connection import CONNECTION_ERRORS, run_script_sync
from .scripts import BOOK

logger = logging.getLogger("django_fork.channels.layers")


#: Seconds a receive's bookkeeping may wait before it is written to Redis.
FLUSH_DELAY = 0.05


class BookkeepingMixin:
    """Batched bookkeeping, written to every shard."""

    def _schedule_flush(self, state):
        if not state.flush_scheduled:
            state.flush_scheduled = True
            state.later(FLUSH_DELAY, lambda: self._flush_async(state))

    def _take_book(self):
        with self._lock:
            received, self._book_received = self._book_received, collections.Counter()
            sent, self._book_sent = self._book_sent, collections.Counter()
            depths, self._book_depths = self._book_depths, collections.Counter()
            seen, self._book_seen = self._book_seen, set()
        per_shard = collections.defaultdict(lambda: [self.prefix])
        for (shard, name, tag), n in sent.items():
            per_shard[shard] += [tag, name, n]
        for (shard, name), n in received.items():
            per_shard[shard] += ["r", name, n]
        for (shard, name, channel), n in depths.items():
            if name is None:
                per_shard[shard] += ["e", channel, n]
            else:
                per_shard[shard] += ["d", name, channel, n]
        for shard, name, consumer in seen:
            per_shard[shard] += ["c", name, consumer]
        return per_shard

    async def _flush_async(self, state=None):
        """Write the pending bookkeeping with state's clients."""
        if state is None:
            state, loop = self._state_now()
            if state is None:
                state = await self._new_state(loop)
        else:
            state.flush_scheduled = False
        per_shard = self._take_book()
        if not per_shard:
            return
        results = await asyncio.gather(
            *(
                state.command(
                    self.shards[name],
                    lambda link, args=args: link.script(BOOK, args),
                )
                for name, args in per_shard.items()
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, Exception):
                logger.debug("Lost receive bookkeeping: %s", result)

    def _flush_sync(self):
        for name, args in self._take_book().items():
            try:
                run_script_sync(self.shards[name].sync_client(), BOOK, args)
            except CONNECTION_ERRORS as e:
                logger.debug("Lost receive bookkeeping: %s", e)
