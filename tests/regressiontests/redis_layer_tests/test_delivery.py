"""
Delivery on Redis: exactly once to competing processes, sharded reply
channels, at-least-once channels, round trips, event loops.
"""

import asyncio
import json
import os
import tempfile
import threading
import time

import redis
from asgiref.sync import async_to_sync
from django.test import SimpleTestCase

from django_fork.channels.layers.redis.delivery import OWNED_LINGER, RETURN_AFTER

from .utils import (
    RedisTestCase,
    read_json,
    start_worker,
    stop_process,
    wait_for,
)


def commandstats(url):
    client = redis.Redis.from_url(url)
    try:
        return {
            name[len("cmdstat_") :]: value["calls"]
            for name, value in client.info("commandstats").items()
        }
    finally:
        client.close()


def reset_stats(url):
    client = redis.Redis.from_url(url)
    try:
        client.config_resetstat()
    finally:
        client.close()


class ExactlyOnceTests(RedisTestCase):
    def test_100k_messages_to_4_processes(self):
        """
        100,000 messages on one channel, received by 4 consumer processes
        (4 concurrent receives each): every message exactly once.
        """
        total, processes = 100_000, 4
        directory = tempfile.mkdtemp()
        outputs = [os.path.join(directory, "out-%d.json" % i) for i in range(processes)]
        # Generous timeouts: the machine may be busy with five processes.
        options = {"socket_timeout": 30}
        workers = [
            start_worker(
                "consume",
                self.urls[0],
                "work",
                out,
                "--tasks",
                "4",
                layer_options=options,
            )
            for out in outputs
        ]
        for worker in workers:
            self.addCleanup(stop_process, worker)
        layer = self.layer(capacity=total + 100, **options)

        async def produce():
            async def batch(start):
                for n in range(start, total, 20):
                    await layer.send("work", {"type": "t", "n": n})

            await asyncio.gather(*(batch(start) for start in range(20)))
            # One stop per receive loop; they come after all the work.
            for _ in range(processes * 4):
                await layer.send("work", {"type": "stop"})

        async_to_sync(produce)()
        for worker in workers:
            self.assertEqual(worker.wait(120), 0)
        received = []
        for out in outputs:
            numbers = read_json(out)
            # Every process took part.
            self.assertGreater(len(numbers), total // 20)
            received += numbers
        self.assertEqual(len(received), total)
        self.assertEqual(sorted(received), list(range(total)))


class ShardedReplyChannelTests(RedisTestCase):
    servers = 3

    async def test_10000_messages_to_1000_reply_channels(self):
        """
        10,000 messages to 1,000 process-specific channels of 10 receiving
        layers spread over 3 shards: all received, each on its channel.
        """
        receivers = [self.layer() for _ in range(10)]
        sender = self.layer()
        channels = {}
        for receiver in receivers:
            for _ in range(100):
                channels[await receiver.new_channel("http.response")] = receiver
        # Each layer's channels live on the shard of its prefix.
        shards = {sender._home(channel).name for channel in channels}
        self.assertGreaterEqual(len(shards), 2)
        received = {channel: [] for channel in channels}

        async def receive_all(channel, receiver):
            for _ in range(10):
                message = await receiver.receive(channel)
                self.assertEqual(message["channel"], channel)
                received[channel].append(message["n"])

        async def send_all(part):
            names = list(channels)[part::10]
            for n in range(10):
                for channel in names:
                    await sender.send(channel, {"channel": channel, "n": n})

        receiving = asyncio.gather(
            *(receive_all(channel, receiver) for channel, receiver in channels.items())
        )
        await asyncio.gather(*(send_all(part) for part in range(10)))
        await asyncio.wait_for(receiving, 60)
        for channel, numbers in received.items():
            self.assertEqual(numbers, list(range(10)))

    async def test_group_send_is_one_script_per_shard(self):
        """group_send() to members on every shard costs one call per shard."""
        layers, shards = [], set()
        # Each layer's process-specific channels live on one shard: take
        # layers until every shard has members.
        while len(shards) < 3:
            layers.append(self.layer())
            shards.add(layers[-1]._home(await layers[-1].new_channel("ws")).name)
        members = []
        for layer in layers:
            for _ in range(20):
                member = await layer.new_channel("ws")
                await layers[0].group_add("room", member)
                members.append((layer, member))
        # Load the script on every shard first.
        await layers[0].group_send("nobody", {"type": "t"})
        await asyncio.sleep(0.2)
        for url in self.urls:
            reset_stats(url)
        await layers[0].group_send("room", {"type": "t", "text": "all"})
        for url in self.urls:
            self.assertEqual(commandstats(url).get("evalsha"), 1)
        for layer, member in members:
            message = await asyncio.wait_for(layer.receive(member), 5)
            self.assertEqual(message["text"], "all")


class RoundTripTests(RedisTestCase):
    async def test_one_round_trip_per_send_and_receive(self):
        layer = self.layer(capacity=1000)
        await layer.send("warm", {"type": "t"})
        await layer.receive("warm")
        await asyncio.sleep(0.2)
        reset_stats(self.urls[0])
        for i in range(200):
            await layer.send("trips", {"type": "t", "n": i})
            self.assertEqual((await layer.receive("trips"))["n"], i)
        stats = commandstats(self.urls[0])
        # Commands run by scripts count too: only EVALSHA and BLMPOP (BLPOP
        # before Redis 7) came from the client. 200 each, and a few scripts
        # writing stats in batches every FLUSH_DELAY seconds.
        self.assertEqual(stats.get("blmpop", 0) + stats.get("blpop", 0), 200)
        self.assertLess(stats["evalsha"], 200 + 20)
        self.assertEqual(stats["rpush"], 200)

    async def test_receives_on_many_channels_are_served_in_batches(self):
        """
        Messages waiting on many channels, each with a receive, are taken in
        a couple of round trips, not one blocking call per channel.
        """
        layer = self.layer()
        channels = ["batch-%d" % i for i in range(10)]
        for channel in channels:
            await layer.send(channel, {"type": "t", "channel": channel})
        await layer.send("warm", {"type": "t"})
        await layer.receive("warm")
        await asyncio.sleep(0.2)
        reset_stats(self.urls[0])
        received = await asyncio.wait_for(
            asyncio.gather(*(layer.receive(channel) for channel in channels)), 5
        )
        self.assertEqual([m["channel"] for m in received], channels)
        stats = commandstats(self.urls[0])
        self.assertLessEqual(stats.get("blmpop", 0) + stats.get("blpop", 0), 3)

    async def test_traffic_on_one_channel_is_not_taken_in_batches(self):
        """
        Receives waiting on several channels, with messages on only one of
        them: BLMPOP takes several at a time, so one LPOP per channel in a
        batch would only add work. A batch is tried, then left off.
        """
        layer = self.layer()
        client = redis.Redis.from_url(self.urls[0])
        self.addCleanup(client.close)
        version = tuple(int(part) for part in client.info()["redis_version"].split("."))
        if not layer._use_blmpop(version[:2]):
            self.skipTest("Batches are how BLPOP takes several messages.")
        channels = ["one", "two", "three"]
        for n in range(40):
            await layer.send("one", {"type": "t", "n": n})
        await layer.send("warm", {"type": "t"})
        await layer.receive("warm")
        await asyncio.sleep(0.2)
        reset_stats(self.urls[0])

        async def consume():
            return [(await layer.receive_any(channels))[1]["n"] for _ in range(10)]

        taken = await asyncio.wait_for(
            asyncio.gather(*(consume() for _ in range(4))), 5
        )
        self.assertEqual(sorted(n for part in taken for n in part), list(range(40)))
        stats = commandstats(self.urls[0])
        # One probe: an LPOP for each of the three channels.
        self.assertLessEqual(stats.get("lpop", 0), 3)

    async def test_reply_channels_share_one_blocking_receive(self):
        """
        Hundreds of receives on a layer's process-specific channels wait
        on one blocking Redis call.
        """
        layer = self.layer()
        names = [await layer.new_channel("http.response") for _ in range(300)]
        waiting = [asyncio.ensure_future(layer.receive(name)) for name in names]
        await asyncio.sleep(0.3)
        client = redis.Redis.from_url(self.urls[0])
        self.addCleanup(client.close)
        self.assertEqual(client.info("clients")["blocked_clients"], 1)
        sender = self.layer()
        for name in names:
            await sender.send(name, {"type": "t", "name": name})
        results = await asyncio.wait_for(asyncio.gather(*waiting), 10)
        self.assertEqual([message["name"] for message in results], names)

    async def test_reply_is_fetched_before_receive(self):
        """A process keeps popping its reply channels for OWNED_LINGER."""
        self.assertGreaterEqual(OWNED_LINGER, 10)
        layer = self.layer()
        sender = self.layer()
        first = await layer.new_channel("reply")
        await sender.send(first, {"type": "t"})
        await layer.receive(first)
        second = await layer.new_channel("reply")
        await sender.send(second, {"type": "t", "n": 2})
        await asyncio.sleep(0.2)
        # Already here: taken from Redis while nobody was receiving.
        self.assertEqual(len(layer._buffer.get(second, ())), 1)
        self.assertEqual((await layer.receive(second))["n"], 2)

    async def test_abandoned_message_goes_back(self):
        """
        A message popped for a receive() that was cancelled meanwhile is
        put back in Redis for other consumers.
        """
        quitter, other = self.layer(), self.layer()
        for _ in range(5):
            with self.assertRaises(asyncio.TimeoutError):
                await asyncio.wait_for(quitter.receive("jobs"), 0.01)
        await other.send("jobs", {"type": "t", "n": 1})
        message = await asyncio.wait_for(other.receive("jobs"), RETURN_AFTER + 5)
        self.assertEqual(message["n"], 1)

    async def test_json_wire_format_in_redis(self):
        """With serializer "json", what Redis holds is "<sent ms>:<JSON>"."""
        layer = self.layer(serializer="json")
        await layer.send("readable", {"type": "t", "body": b"\x01"})
        client = redis.Redis.from_url(self.urls[0])
        self.addCleanup(client.close)
        element = client.lindex("django_fork:c:readable", 0)
        sent, _, body = element.partition(b":")
        self.assertAlmostEqual(int(sent) / 1000, time.time(), delta=5)
        self.assertEqual(json.loads(body), {"type": "t", "body": {"$bytes": "AQ=="}})


class EventLoopTests(RedisTestCase):
    def test_sync_senders_in_threads(self):
        """
        Threads sending with send_sync() and async_to_sync(send) wake a
        receive waiting in another event loop.
        """
        layer = self.layer(capacity=10000)
        received = []

        async def consume():
            for _ in range(600):
                received.append((await layer.receive("crossing"))["n"])

        def produce_sync(start):
            for n in range(start, start + 200):
                layer.send_sync("crossing", {"type": "t", "n": n})

        def produce_async(start):
            async def produce():
                for n in range(start, start + 200):
                    await layer.send("crossing", {"type": "t", "n": n})

            async_to_sync(produce)()

        threads = [
            threading.Thread(target=produce_sync, args=(0,)),
            threading.Thread(target=produce_sync, args=(200,)),
            threading.Thread(target=produce_async, args=(400,)),
        ]
        for thread in threads:
            thread.start()
        asyncio.run(asyncio.wait_for(consume(), 30))
        for thread in threads:
            thread.join()
        self.assertEqual(sorted(received), list(range(600)))

    def test_close_releases_connections(self):
        layer = self.layer()
        client = redis.Redis.from_url(self.urls[0])
        self.addCleanup(client.close)
        before = client.info("clients")["connected_clients"]

        async def use():
            name = await layer.new_channel("reply")
            await layer.send(name, {"type": "t"})
            await layer.receive(name)
            await layer.send("x", {"type": "t"})
            await layer.receive("x")
            await layer.close()

        asyncio.run(use())
        self.assertEqual(layer._states, {})
        self.assertEqual(
            wait_for(lambda: client.info("clients")["connected_clients"] <= before, 5),
            True,
        )


class AtLeastOnceTests(RedisTestCase):
    layer_options = {"at_least_once": ["tasks.*"], "visibility_timeout": 1}

    async def test_acked_message_is_not_redelivered(self):
        worker, other = self.layer(), self.layer()
        await worker.send("tasks.a", {"type": "t", "n": 1})
        message = await asyncio.wait_for(worker.receive("tasks.a"), 5)
        await worker.ack("tasks.a", message)
        with self.assertRaises(asyncio.TimeoutError):
            await asyncio.wait_for(other.receive("tasks.a"), 2.5)
        self.assertEqual((await other.stats(["tasks.a"]))["tasks.a"]["depth"], 0)

    async def test_unacked_message_is_redelivered(self):
        """Not acked within visibility_timeout: delivered again, not before."""
        worker, other = self.layer(), self.layer()
        await worker.send("tasks.b", {"type": "t", "n": 2})
        message = await asyncio.wait_for(worker.receive("tasks.b"), 5)
        taken = time.monotonic()
        redelivered = await asyncio.wait_for(other.receive("tasks.b"), 10)
        self.assertEqual(redelivered, message)
        self.assertGreaterEqual(time.monotonic() - taken, 0.9)
        await other.ack("tasks.b", redelivered)
        # The first worker's late ack is harmless.
        await worker.ack("tasks.b", message)

    async def test_peek_shows_what_was_not_handed_out(self):
        layer = self.layer()
        await layer.send("tasks.p", {"type": "t", "n": 1})
        await layer.send("tasks.p", {"type": "t", "n": 2})
        taken = await asyncio.wait_for(layer.receive("tasks.p"), 5)
        self.assertEqual(taken["n"], 1)
        self.assertEqual([m["n"] for m in await layer.peek("tasks.p")], [2])
        await layer.ack("tasks.p", taken)

    async def test_other_channels_are_at_most_once(self):
        worker, other = self.layer(), self.layer()
        await worker.send("plain", {"type": "t"})
        await asyncio.wait_for(worker.receive("plain"), 5)
        with self.assertRaises(asyncio.TimeoutError):
            await asyncio.wait_for(other.receive("plain"), 2)

    async def test_receive_any_over_both_kinds(self):
        layer = self.layer()
        await layer.send("tasks.c", {"type": "t", "n": 3})
        await layer.send("plain", {"type": "t", "n": 4})
        got = {}
        for _ in range(2):
            channel, message = await asyncio.wait_for(
                layer.receive_any(["tasks.c", "plain"]), 5
            )
            got[channel] = message["n"]
            await layer.ack(channel, message)
        self.assertEqual(got, {"tasks.c": 3, "plain": 4})

    def test_worker_killed_holding_a_message(self):
        """
        A worker process SIGKILLed while it holds an at-least-once message:
        the message is redelivered to another worker.
        """
        directory = tempfile.mkdtemp()
        held, taken = os.path.join(directory, "held"), os.path.join(directory, "taken")
        options = {"at_least_once": ["tasks.*"], "visibility_timeout": 2}
        url = ",".join(self.urls)
        holder = start_worker("hold", url, "tasks.kill", held, layer_options=options)
        self.addCleanup(stop_process, holder)
        self.layer(**options).send_sync("tasks.kill", {"type": "t", "n": 42})
        self.assertEqual(wait_for(lambda: read_json(held), 30), 42)
        holder.kill()
        holder.wait(10)
        taker = start_worker("take", url, "tasks.kill", taken, layer_options=options)
        self.addCleanup(stop_process, taker)
        self.assertEqual(taker.wait(60), 0)
        self.assertEqual(read_json(taken), 42)


class ShardedAtLeastOnceTests(AtLeastOnceTests):
    servers = 3


class OptionTests(SimpleTestCase):
    def test_extensions(self):
        from django_fork.channels.layers.redis import RedisChannelLayer

        layer = RedisChannelLayer("redis://127.0.0.1:1/0")
        self.assertIn("at_least_once", layer.extensions)
        with self.assertRaises(ValueError):
            RedisChannelLayer([])
        with self.assertRaises(ValueError):
            RedisChannelLayer(prefix="a:b")
