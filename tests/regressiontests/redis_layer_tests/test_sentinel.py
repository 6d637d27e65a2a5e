"""Shards behind Redis Sentinel: the contract, and a failover."""

import asyncio
import time

import redis
from django.test import SimpleTestCase
from layers_tests.contract import ChannelLayerContractTests

from django_fork.channels.exceptions import ChannelLayerUnavailable
from django_fork.channels.layers.redis import RedisChannelLayer
from django_fork.channels.layers.redis.connection import parse_location
from django_fork.channels.layers.redis.sentinel import SentinelLocation
from django_fork.test.redis import SentinelGroup, require_redis

from .utils import RedisServersMixin


class SentinelLocationTests(SimpleTestCase):
    def test_url(self):
        name, location = parse_location(
            "sentinel://:s%40cret@10.0.0.1:26379,10.0.0.2:26380/channels/2"
        )
        self.assertEqual(name, "sentinel:channels/2")
        self.assertEqual(location.sentinels, [("10.0.0.1", 26379), ("10.0.0.2", 26380)])
        self.assertEqual((location.service_name, location.db), ("channels", 2))
        self.assertEqual(location.connection, {"password": "s@cret"})

    def test_dict(self):
        name, location = parse_location(
            {
                "sentinels": [("10.0.0.1", 26379), "10.0.0.2:26379"],
                "service_name": "channels",
                "sentinel_kwargs": {"password": "x"},
                "username": "u",
            }
        )
        self.assertEqual(name, "sentinel:channels/0")
        self.assertEqual(location.sentinels[1], ("10.0.0.2", 26379))
        self.assertEqual(location.sentinel_kwargs, {"password": "x"})
        self.assertEqual(location.connection, {"username": "u"})

    def test_same_name_whatever_the_order(self):
        one = SentinelLocation(["a:1", "b:2"], "s")
        other = SentinelLocation(["b:2", "a:1"], "s")
        self.assertEqual(one.name, other.name)

    def test_bad_locations(self):
        for entry in [
            "sentinel://10.0.0.1:26379",
            "sentinel://10.0.0.1:26379/a/0/extra",
            "sentinel:///service",
            {"sentinels": [], "service_name": "s"},
            {"sentinels": ["nohost"], "service_name": "s"},
            {"sentinels": ["a:1"], "service_name": ""},
            42,
        ]:
            with self.subTest(entry=entry):
                with self.assertRaises((ValueError, TypeError)):
                    RedisChannelLayer(entry)

    def test_a_connection_is_never_to_the_default_address(self):
        """
        Before the sentinels name the primary, a connection's address
        refuses connections: never redis-py's default localhost:6379.
        """
        location = SentinelLocation(["127.0.0.1:1"], "s")
        pool = location.connection_pool()
        self.assertEqual(pool.connection_kwargs["port"], 0)


class SentinelMixin(RedisServersMixin):
    """The layer on one shard behind three sentinels, with a replica."""

    @classmethod
    def setUpClass(cls):
        require_redis()
        super(RedisServersMixin, cls).setUpClass()
        cls.group = SentinelGroup(replicas=1, sentinels=3).start()
        cls.addClassCleanup(cls.group.cleanup)

    def setUp(self):
        super(RedisServersMixin, self).setUp()
        self.warnings_as_errors()
        port = self.group.primary_port()
        client = redis.Redis(host="127.0.0.1", port=port)
        client.flushall()
        client.close()

    def make_layer(self, **options):
        return RedisChannelLayer(location=self.group.location, **options)

    def layer_pair(self):
        return self.layer(), self.layer()


class SentinelContractTests(SentinelMixin, ChannelLayerContractTests, SimpleTestCase):
    """The contract on a Sentinel-managed shard."""


class SentinelFailoverTests(SentinelMixin, SimpleTestCase):
    async def test_failover(self):
        """
        With the primary killed, sends fail with ChannelLayerUnavailable
        until the sentinels promote the replica; then traffic flows, and a
        receive that waited through the failover gets its message.
        """
        layer = self.layer()
        await layer.send("before", {"type": "t", "n": 1})
        self.assertEqual((await asyncio.wait_for(layer.receive("before"), 2))["n"], 1)
        waiting = asyncio.ensure_future(layer.receive("after"))
        await asyncio.sleep(0.1)
        old = self.group.primary_port()
        self.group.server_on(old).kill()
        self.addCleanup(self.group.server_on(old).start)
        deadline = time.monotonic() + 30
        failed = 0
        while True:
            try:
                await layer.send("after", {"type": "t", "n": 2})
                break
            except ChannelLayerUnavailable:
                failed += 1
                self.assertLess(time.monotonic(), deadline)
                await asyncio.sleep(0.1)
        self.assertGreater(failed, 0)
        self.assertNotEqual(self.group.primary_port(), old)
        self.assertEqual((await asyncio.wait_for(waiting, 15))["n"], 2)
        layer.send_sync("sync", {"type": "t", "n": 3})
        self.assertEqual((await asyncio.wait_for(layer.receive("sync"), 5))["n"], 3)
