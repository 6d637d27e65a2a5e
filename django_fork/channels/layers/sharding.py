"""
Consistent hashing of names onto shards.

Each shard is placed on a ring of 2**64 positions at POINTS positions, the
first 8 bytes (big-endian) of MD5("<shard name>#<i>") for i in 0..POINTS-1. A
key belongs to the shard owning the first position at or after the key's own
position, MD5(key) read the same way, wrapping around at the end.

The function depends only on shard names, not on their order in settings, so
every process that lists the same shards agrees on where a key lives, and
adding a shard moves only the keys that land on its positions: about
1 / (number of shards) of them, all to the new shard. The function is written
down here so that a process in another language can compute it too.
"""

import bisect
import hashlib

__all__ = ["POINTS", "HashRing", "key_position"]

#: Positions per shard on the ring; more positions, a more even spread.
POINTS = 160


def key_position(key):
    """Return the ring position of key (a str) as an int in [0, 2**64)."""
    digest = hashlib.md5(key.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big")


class HashRing:
    """A consistent-hash ring over shard names."""

    def __init__(self, names, points=POINTS):
        names = list(names)
        if not names:
            raise ValueError("A hash ring needs at least one shard.")
        if len(set(names)) != len(names):
            raise ValueError("Shard names must be unique: %r." % names)
        self.names = names
        ring = sorted(
            (key_position("%s#%d" % (name, i)), name)
            for name in names
            for i in range(points)
        )
        self._positions = [position for position, _ in ring]
        self._owners = [name for _, name in ring]

    def __len__(self):
        return len(self.names)

    def _index(self, key):
        return bisect.bisect_left(self._positions, key_position(key)) % len(
            self._positions
        )

    def get(self, key):
        """Return the name of the shard key belongs to."""
        if len(self.names) == 1:
            return self.names[0]
        return self._owners[self._index(key)]

    def walk(self, key):
        """
        Return every shard name, starting with key's shard and going on in
        ring order: the order to fall back in when a shard is down.
        """
        if len(self.names) == 1:
            return list(self.names)
        start = self._index(key)
        seen = []
        count = len(self._owners)
        for offset in range(count):
            name = self._owners[(start + offset) % count]
            if name not in seen:
                seen.append(name)
                if len(seen) == len(self.names):
                    break
        return seen
