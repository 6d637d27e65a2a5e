"""
Per-channel load figures, the answer to "how much load is the layer under?"

Every backend reports, per channel:

- depth: messages waiting now.
- oldest_age: seconds the oldest waiting message has waited.
- capacity: the channel's capacity.
- sent / received: messages in and out since the layer started.
- in_rate / out_rate: messages per second in and out over the last
  RATE_WINDOW seconds.
- full: how many sends failed with ChannelFull.
- consumers: distinct receivers seen on the channel in the last
  CONSUMER_WINDOW seconds.
"""

import math

RATE_WINDOW = 10
CONSUMER_WINDOW = 60


class ChannelCounters:
    """Counters of one channel, bucketed per second for rates."""

    __slots__ = ("sent_total", "received_total", "full_total", "_buckets", "_seen")

    def __init__(self):
        self.sent_total = 0
        self.received_total = 0
        self.full_total = 0
        # [second, sent, received] for the last RATE_WINDOW seconds.
        self._buckets = []
        # consumer id -> last seen (monotonic seconds)
        self._seen = {}

    def _bucket(self, now):
        second = math.floor(now)
        buckets = self._buckets
        if not buckets or buckets[-1][0] != second:
            buckets.append([second, 0, 0])
            while buckets[0][0] <= second - RATE_WINDOW:
                buckets.pop(0)
        return buckets[-1]

    def sent(self, now):
        self.sent_total += 1
        self._bucket(now)[1] += 1

    def received(self, now):
        self.received_total += 1
        self._bucket(now)[2] += 1

    def full(self, now):
        self.full_total += 1

    def consumer_seen(self, consumer, now):
        self._seen[consumer] = now
        if len(self._seen) > 1000:
            self._forget_consumers(now)

    def _forget_consumers(self, now):
        for consumer, seen in list(self._seen.items()):
            if seen <= now - CONSUMER_WINDOW:
                del self._seen[consumer]

    def idle(self, now):
        """Return True when nothing happened on the channel for a while."""
        self._forget_consumers(now)
        last = self._buckets[-1][0] if self._buckets else -math.inf
        return not self._seen and last <= now - CONSUMER_WINDOW

    def as_dict(self, now, depth, oldest_age, capacity):
        self._forget_consumers(now)
        start = math.floor(now) - RATE_WINDOW
        window = [b for b in self._buckets if b[0] > start]
        return {
            "depth": depth,
            "oldest_age": round(oldest_age, 3),
            "capacity": capacity,
            "sent": self.sent_total,
            "received": self.received_total,
            "in_rate": sum(b[1] for b in window) / RATE_WINDOW,
            "out_rate": sum(b[2] for b in window) / RATE_WINDOW,
            "full": self.full_total,
            "consumers": len(self._seen),
        }
