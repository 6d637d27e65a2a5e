"""
Stats: the counts of sends and receives, and the consumers seen, which the
bookkeeping (book.py) writes to Redis off the hot path; stats() reads them
from every shard.
"""

import asyncio
import collections
import threading
import time

from django_fork.channels.layers.stats import RATE_WINDOW
from django_fork.channels.names import is_short_lived, stats_name

from .connection import run_script_sync
from .scripts import STATS


class StatsMixin:
    """Counts for the bookkeeping, and stats() over every shard."""

    def _count_send(self, shard, name, sent):
        """Count a send to a channel whose stats name is name."""
        key = (shard.name, name, "s" if sent else "f")
        with self._lock:
            self._book_sent[key] += 1

    def _note_consumer(self, channels, state):
        """Record, for stats, that this task receives from channels."""
        if self._note_consumer_ids(channels, id(asyncio.current_task())):
            self._schedule_flush(state)

    @staticmethod
    def _thread_owner():
        """The consumer id of the calling thread, unlike any task's id."""
        return -threading.get_ident()

    def _note_consumer_ids(self, channels, task_id):
        """
        Record that the consumer task_id receives from channels; return
        whether that is news to write.
        """
        now = time.monotonic()
        seen_at = self._seen_at
        added = False
        for channel in channels:
            name = stats_name(channel)
            # The receivers of a process's short-lived channels (a task per
            # request) count as one: the process.
            owner = None if is_short_lived(channel) else task_id
            key = (name, owner)
            if now - seen_at.get(key, -60) < 10:
                continue
            if len(seen_at) > 10000:
                seen_at.clear()
            seen_at[key] = now
            if owner is None:
                consumer = self.client_prefix
            else:
                consumer = "%s.%x" % (self.client_prefix, owner)
            with self._lock:
                self._book_seen.add((self._home(name).name, name, consumer))
            added = True
        return added

    def _stats_args(self, channels):
        if channels is None:
            return [self.prefix, "1"]
        channels = list(channels)
        for channel in channels:
            self.validate_channel_name(channel)
        return [self.prefix, "0", *channels]

    async def stats(self, channels=None):
        """Return the load of channels, summed over every shard."""
        await self._flush_async()
        args = self._stats_args(channels)
        replies = await asyncio.gather(
            *(
                self._call(shard, lambda link: link.script(STATS, args))
                for shard in self.shards.values()
            )
        )
        return self._merge_stats(channels, replies)

    def stats_sync(self, channels=None):
        self._flush_sync()
        args = self._stats_args(channels)
        replies = [
            self._call_sync(shard, lambda c: run_script_sync(c, STATS, args))
            for shard in self.shards.values()
        ]
        return self._merge_stats(channels, replies)

    def _merge_stats(self, channels, replies):
        totals = {}
        for reply in replies:
            now = int(reply[0])
            second = now // 1000
            for i in range(1, len(reply), 5):
                channel = reply[i].decode()
                depth, oldest = int(reply[i + 1]), int(reply[i + 2])
                fields = reply[i + 3]
                fields = dict(zip(fields[::2], fields[1::2]))
                total = totals.setdefault(channel, collections.Counter())
                total["depth"] += depth
                if oldest >= 0 and depth:
                    age = max(0, now - oldest) / 1000
                    total["oldest_age"] = max(total["oldest_age"], age)
                total["sent"] += int(fields.get(b"s", 0))
                total["received"] += int(fields.get(b"r", 0))
                total["full"] += int(fields.get(b"f", 0))
                for bucket in range(12):
                    started = int(fields.get(b"t%d" % bucket, 0))
                    if second - RATE_WINDOW < started <= second:
                        total["in"] += int(fields.get(b"s%d" % bucket, 0))
                        total["out"] += int(fields.get(b"r%d" % bucket, 0))
                total["consumers"] += int(reply[i + 4])
        names = sorted(totals) if channels is None else list(channels)
        result = {}
        for name in names:
            total = totals.get(name, collections.Counter())
            result[name] = {
                "depth": total["depth"],
                "oldest_age": round(total["oldest_age"], 3),
                "capacity": self.get_capacity(name),
                "sent": total["sent"],
                "received": total["received"],
                "in_rate": total["in"] / RATE_WINDOW,
                "out_rate": total["out"] / RATE_WINDOW,
                "full": total["full"],
                "consumers": total["consumers"],
            }
        return result
