"""
group_send() on Redis: process-specific members are sent to by process,
with the capacity, expiry, depth and stats rules of a send.
"""

import asyncio

import redis

from .test_delivery import commandstats, reset_stats
from .utils import RedisTestCase


class GroupSendTests(RedisTestCase):
    def redis_client(self):
        client = redis.Redis.from_url(self.urls[0])
        self.addCleanup(client.close)
        return client

    async def members(self, layer, group, count):
        names = [await layer.new_channel("websocket.send") for _ in range(count)]
        for name in names:
            await layer.group_add(group, name)
        return names

    async def depths_drained(self, layer, timeout=5):
        """Wait until layer's process has no depth counted; return whether."""
        client = self.redis_client()
        key = "%s:n:%s" % (layer.prefix, layer.client_prefix)
        deadline = asyncio.get_running_loop().time() + timeout
        while client.hlen(key):
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def test_1000_members_of_two_processes(self):
        """
        1,000 members in two processes get the message once each, for one
        RPUSH and one HMGET per process, not commands per member.
        """
        layers = [self.layer(capacity=10), self.layer(capacity=10)]
        members = []
        for layer in layers:
            for name in await self.members(layer, "room", 500):
                members.append((layer, name))
        # Load the script first.
        await layers[0].group_send("nobody", {"type": "t"})
        reset_stats(self.urls[0])
        await layers[0].group_send("room", {"type": "t", "text": "all"})
        calls = commandstats(self.urls[0])
        self.assertEqual(calls.get("rpush"), 2)
        self.assertEqual(calls.get("hmget"), 2)
        # The depths of each process in one HSET; the rest are the stats
        # counters of the two processes: nothing per member.
        self.assertLessEqual(calls.get("hset"), 4)
        self.assertLessEqual(calls.get("hincrby", 0), 4)
        self.assertLessEqual(calls.get("pexpire", 0), 8)
        await layers[1].group_send("room", {"type": "t", "text": "again"})
        reset_stats(self.urls[0])
        for layer, name in members:
            for text in ("all", "again"):
                message = await asyncio.wait_for(layer.receive(name), 5)
                self.assertEqual(message["text"], text)
        # Every depth counted is handed back once the messages are out, in
        # a few commands per bookkeeping batch, not one or two per member
        # (the HINCRBYs left are the stats counters of each batch).
        for layer in layers:
            self.assertTrue(await self.depths_drained(layer))
        calls = commandstats(self.urls[0])
        self.assertLess(calls.get("hdel", 0) + calls.get("hincrby", 0), 500)

    async def test_full_members_miss_it_and_count_as_full(self):
        layer = self.layer(capacity=2)
        full, free = await self.members(layer, "room", 2)
        await layer.send(full, {"type": "t", "n": 0})
        await layer.send(full, {"type": "t", "n": 1})
        await layer.group_send("room", {"type": "t", "n": 2})
        self.assertEqual((await asyncio.wait_for(layer.receive(free), 5))["n"], 2)
        for n in (0, 1):
            self.assertEqual((await asyncio.wait_for(layer.receive(full), 5))["n"], n)
        stats = await layer.stats([full])
        self.assertEqual(stats[full]["full"], 1)
        # Room again: the next one arrives.
        await layer.group_send("room", {"type": "t", "n": 3})
        self.assertEqual((await asyncio.wait_for(layer.receive(full), 5))["n"], 3)
        self.assertEqual((await asyncio.wait_for(layer.receive(free), 5))["n"], 3)

    async def test_expired_messages_make_room(self):
        """A member full of expired messages gets the message."""
        layer = self.layer(capacity=1, expiry=1)
        sender = self.layer(capacity=1, expiry=1)
        # The member's process receives nothing meanwhile: the expired
        # message stays in Redis, where group_send() finds it.
        (member,) = await self.members(layer, "room", 1)
        await sender.send(member, {"type": "t", "n": 0})
        await asyncio.sleep(1.2)
        await sender.group_send("room", {"type": "t", "n": 1})
        self.assertEqual((await asyncio.wait_for(layer.receive(member), 5))["n"], 1)

    async def test_lapsed_members_are_removed(self):
        layer = self.layer(group_expiry=1)
        await self.members(layer, "room", 3)
        await asyncio.sleep(1.2)
        (fresh,) = await self.members(layer, "room", 1)
        await layer.group_send("room", {"type": "t"})
        await asyncio.wait_for(layer.receive(fresh), 5)
        client = self.redis_client()
        self.assertEqual(client.hlen("%s:g:room" % layer.prefix), 1)

    async def test_members_of_every_kind(self):
        """Ordinary, single-reader and process-specific members together."""
        layer = self.layer()
        single = await layer.new_channel("stream?")
        owned = await layer.new_channel("websocket.send")
        for name in ("ordinary", single, owned):
            await layer.group_add("room", name)
        await layer.group_send("room", {"type": "t", "text": "all"})
        for name in ("ordinary", single, owned):
            message = await asyncio.wait_for(layer.receive(name), 5)
            self.assertEqual(message["text"], "all")
