"""Every key the Redis layer writes expires; redis-py gives no warnings."""

import asyncio
import warnings

import redis
import redis.asyncio
from django.test import SimpleTestCase

from django_fork.channels.exceptions import ChannelFull
from django_fork.channels.layers.redis.connection import _no_setinfo

from .utils import RedisTestCase


class KeyExpiryTests(RedisTestCase):
    servers = 2

    def keys_without_expiry(self):
        found = {}
        for url in self.urls:
            client = redis.Redis.from_url(url)
            try:
                for key in client.scan_iter(count=1000):
                    ttl = client.pttl(key)
                    if ttl < 0:
                        found[key.decode()] = ttl
            finally:
                client.close()
        return found

    async def test_no_key_without_expiry(self):
        """
        After sends, receives, streams put back unread, groups, delays and
        stats, every key of the layer has an expiry.
        """
        layer = self.layer(expiry=5, capacity=2, at_least_once=["alo.*"])
        other = self.layer(expiry=5, at_least_once=["alo.*"])
        await layer.send("ordinary", {"type": "t"})
        await layer.send(await layer.new_channel("reply"), {"type": "t"})
        body = await layer.new_channel("body?")
        await layer.send(body, {"type": "t", "n": 0})
        await asyncio.wait_for(layer.receive(body), 2)
        # The depth handed back is written within FLUSH_DELAY (at once for a
        # channel this small, on a connection of its own, which may still be
        # connecting): wait for it, or the channel may look full below.
        await asyncio.sleep(0.1)
        # The owner pops these ahead of a receive that never comes; its
        # process puts them back after a second (an aborted download).
        for n in range(2):
            await layer.send(body, {"type": "t", "n": n, "body": b"x" * 65536})
        await layer.group_add("room", "member")
        await layer.group_send("room", {"type": "t"})
        await layer.send("busy", {"type": "t"})
        await layer.send("busy", {"type": "t"})
        await layer.send_later("busy", {"type": "t"}, 0.05)
        await layer.send("alo.jobs", {"type": "t"})
        await asyncio.wait_for(other.receive("alo.jobs"), 2)
        await asyncio.wait_for(other.receive("ordinary"), 2)
        await asyncio.sleep(1.6)
        await layer.stats()
        with self.assertRaises(ChannelFull):
            await layer.send(body, {"type": "t"})
        self.assertEqual(self.keys_without_expiry(), {})
        # What was put back is still there, in order, for its owner.
        for n in range(2):
            self.assertEqual((await asyncio.wait_for(layer.receive(body), 2))["n"], n)


class DriverInfoTests(SimpleTestCase):
    def test_driver_info_found(self):
        """
        redis-py 8.1 declares driver_info on AbstractConnection, not on
        Connection.__init__: the layer finds it, and new connections warn
        of nothing.
        """
        self.assertEqual(_no_setinfo(redis.asyncio.Connection), {"driver_info": None})
        self.assertEqual(_no_setinfo(redis.Connection), {"driver_info": None})
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            redis.asyncio.Connection(**_no_setinfo(redis.asyncio.Connection))
            redis.Connection(**_no_setinfo(redis.Connection))
