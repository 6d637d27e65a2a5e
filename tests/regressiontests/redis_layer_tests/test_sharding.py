"""Consistent hashing of names onto the shards of the Redis layer."""

from django.test import SimpleTestCase

from django_fork.channels.layers.redis import RedisChannelLayer, shard_name
from django_fork.channels.layers.sharding import HashRing, key_position


class HashRingTests(SimpleTestCase):
    keys = ["channel-%d" % i for i in range(20000)]

    def test_spread(self):
        """Keys spread evenly: each of 3 shards gets about a third."""
        ring = HashRing(["a:1/0", "b:1/0", "c:1/0"])
        counts = {}
        for key in self.keys:
            counts[ring.get(key)] = counts.get(ring.get(key), 0) + 1
        for name, count in counts.items():
            with self.subTest(shard=name):
                self.assertAlmostEqual(count / len(self.keys), 1 / 3, delta=0.05)

    def test_adding_a_shard_moves_its_share_only(self):
        """
        Going from 3 to 4 shards moves about 1/4 of the keys, all of them to
        the new shard, as consistent hashing predicts.
        """
        before = HashRing(["a:1/0", "b:1/0", "c:1/0"])
        after = HashRing(["a:1/0", "b:1/0", "c:1/0", "d:1/0"])
        moved = [key for key in self.keys if before.get(key) != after.get(key)]
        self.assertAlmostEqual(len(moved) / len(self.keys), 1 / 4, delta=0.04)
        self.assertEqual({after.get(key) for key in moved}, {"d:1/0"})

    def test_order_of_shards_does_not_matter(self):
        one = HashRing(["a:1/0", "b:1/0", "c:1/0"])
        other = HashRing(["c:1/0", "a:1/0", "b:1/0"])
        self.assertTrue(all(one.get(key) == other.get(key) for key in self.keys))

    def test_documented_function(self):
        """The position function is MD5's first 8 bytes, big-endian."""
        self.assertEqual(key_position("x"), 0x9DD4E461268C8034)

    def test_walk(self):
        ring = HashRing(["a:1/0", "b:1/0", "c:1/0"])
        for key in self.keys[:100]:
            walk = ring.walk(key)
            self.assertEqual(walk[0], ring.get(key))
            self.assertEqual(sorted(walk), ["a:1/0", "b:1/0", "c:1/0"])

    def test_bad_rings(self):
        with self.assertRaises(ValueError):
            HashRing([])
        with self.assertRaises(ValueError):
            HashRing(["a", "a"])

    def test_shard_names(self):
        """A shard is named by host, port and database, not credentials."""
        self.assertEqual(shard_name("redis://:pw@10.0.0.1:6380/2"), "10.0.0.1:6380/2")
        self.assertEqual(shard_name("redis://localhost"), "localhost:6379/0")
        self.assertEqual(shard_name("rediss://u:p@h:1/0?x=1"), "h:1/0")
        self.assertEqual(shard_name("unix:///tmp/r.sock?db=3"), "unix:/tmp/r.sock/3")

    def test_same_server_twice(self):
        with self.assertRaisesMessage(ValueError, "listed twice"):
            RedisChannelLayer(["redis://a:1/0", "redis://:pw@a:1/0"])
