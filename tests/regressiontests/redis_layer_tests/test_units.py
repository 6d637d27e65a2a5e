"""The pure parts of the Redis layer: hashing, wire formats, test servers."""

import base64
import json
import os
import unittest
from unittest import mock

import redis
from django.test import SimpleTestCase

from django_fork.channels.exceptions import InvalidMessage
from django_fork.channels.layers.redis import RedisChannelLayer, shard_name
from django_fork.channels.layers.serializers import (
    DecodeError,
    JSONSerializer,
    MsgpackSerializer,
    get_serializer,
)
from django_fork.channels.layers.sharding import HashRing, key_position
from django_fork.test.redis import (
    RedisServer,
    RedisUnavailable,
    redis_server_path,
    require_redis,
)


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


class SerializerTests(SimpleTestCase):
    message = {
        "type": "t",
        "bytes": b"\x00\xff",
        "$money": ["$1", {"$bytes": "not bytes", "$$": 1}],
        "nested": {"b": [b"", 1.5, None, True]},
    }

    def test_round_trips(self):
        for name in ["msgpack", "json"]:
            for keys in [None, ["k1"]]:
                with self.subTest(serializer=name, encrypted=bool(keys)):
                    serializer = get_serializer(name, keys)
                    data = serializer.dumps(self.message)
                    self.assertEqual(serializer.loads(data), self.message)

    def test_json_wire_format(self):
        """JSON carries bytes as {"$bytes": base64}; "$" keys get a "$"."""
        data = json.loads(JSONSerializer().dumps(self.message))
        self.assertEqual(
            data["bytes"], {"$bytes": base64.b64encode(b"\x00\xff").decode()}
        )
        self.assertEqual(data["$$money"][1], {"$$bytes": "not bytes", "$$$": 1})

    def test_json_refuses_nan(self):
        with self.assertRaises(InvalidMessage):
            JSONSerializer().dumps({"type": "t", "x": float("nan")})

    def test_msgpack_refuses_huge_ints(self):
        with self.assertRaises(InvalidMessage):
            MsgpackSerializer().dumps({"type": "t", "x": 2**70})

    def test_invalid_messages(self):
        for name in ["msgpack", "json"]:
            serializer = get_serializer(name)
            for message in [[], {1: 2}, {"x": {1, 2}}, {"x": [object()]}]:
                with self.subTest(serializer=name, message=message):
                    with self.assertRaises(InvalidMessage):
                        serializer.dumps(message)

    def test_key_rotation(self):
        """The first key encrypts, every key decrypts."""
        old = get_serializer("msgpack", ["old"])
        rotated = get_serializer("msgpack", ["new", "old"])
        new = get_serializer("msgpack", ["new"])
        data = old.dumps({"type": "t"})
        self.assertEqual(rotated.loads(data), {"type": "t"})
        with self.assertRaises(DecodeError):
            new.loads(data)
        self.assertEqual(new.loads(rotated.dumps({"type": "t"})), {"type": "t"})

    def test_unknown_serializer(self):
        with self.assertRaisesMessage(ValueError, "'yaml'"):
            get_serializer("yaml")


class RedisServerTests(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        require_redis()
        super().setUpClass()

    def test_kill_and_restart_on_the_same_port(self):
        server = RedisServer().start()
        self.addCleanup(server.cleanup)
        self.assertNotEqual(server.port, 6379)
        client = redis.Redis.from_url(server.url)
        self.addCleanup(client.close)
        client.set("k", "v")
        port = server.port
        server.kill()
        self.assertFalse(server.running)
        with self.assertRaises(redis.ConnectionError):
            client.ping()
        server.restart()
        self.assertEqual(server.port, port)
        # Persistence is off: a restarted server is empty.
        self.assertIsNone(client.get("k"))

    def test_missing_redis_skips_but_fails_under_ci(self):
        with mock.patch.dict(os.environ, {"REDIS_SERVER": "/nonexistent/redis"}):
            self.assertIsNone(redis_server_path())
            with mock.patch.dict(os.environ, {"CI": "false"}):
                with self.assertRaises(unittest.SkipTest):
                    require_redis()
            with mock.patch.dict(os.environ, {"CI": "true"}):
                with self.assertRaises(RedisUnavailable):
                    require_redis()
