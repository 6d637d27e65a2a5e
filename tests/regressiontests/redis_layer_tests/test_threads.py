"""
The Redis layer from threads and under bursts: blocking receives in a
worker's threads, and the bound on connections a burst of sends opens.
"""

import asyncio
import json
import threading
import time

import redis
from django.test import override_settings

from django_fork.channels.exceptions import ChannelLayerUnavailable
from django_fork.channels.interface import InterfaceApplication
from django_fork.channels.layers import get_channel_layer
from django_fork.channels.messages import HTTP_REQUEST_CHANNEL

from .test_delivery import commandstats, reset_stats
from .utils import RedisTestCase


def client_count(url):
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        return len(client.client_list())
    finally:
        client.close()


class ConnectionBoundTests(RedisTestCase):
    def test_1000_concurrent_sends_stay_under_the_bound(self):
        """
        1,000 sends at once from one event loop open at most
        max_connections connections to Redis; every message arrives.
        """
        bound = 16
        layer = self.layer(max_connections=bound, capacity=2000)
        url = self.urls[0]
        peak = []
        done = threading.Event()
        idle = client_count(url)

        def sample():
            # One connection of its own, counted out below.
            client = redis.Redis.from_url(url, socket_timeout=5)
            try:
                while not done.is_set():
                    peak.append(len(client.client_list()))
            finally:
                client.close()

        async def burst():
            await asyncio.gather(*(layer.send("burst", {"n": n}) for n in range(1000)))

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            # The sampler's first CLIENT LIST is in before the burst starts.
            deadline = time.monotonic() + 5
            while not peak and time.monotonic() < deadline:
                time.sleep(0.01)
            asyncio.run(burst())
        finally:
            done.set()
            sampler.join(10)
        self.assertGreater(len(peak), 1)
        # The sampler's connection, and those open before the burst.
        self.assertLessEqual(max(peak) - 1 - idle, bound)
        client = redis.Redis.from_url(url)
        try:
            self.assertEqual(client.llen("django_fork:c:burst"), 1000)
        finally:
            client.close()

    def test_waiting_commands_are_served_in_turn(self):
        """With one connection, concurrent sends all go through, in order."""
        layer = self.layer(max_connections=1)

        async def main():
            await asyncio.gather(*(layer.send("turns", {"n": n}) for n in range(50)))
            return [(await layer.receive("turns"))["n"] for _ in range(50)]

        self.assertEqual(asyncio.run(main()), list(range(50)))

    def test_max_connections_must_be_positive(self):
        with self.assertRaisesMessage(ValueError, "max_connections"):
            self.make_layer(max_connections=0)


class BlockingReceiveTests(RedisTestCase):
    def test_which_channels_can_block(self):
        """Ordinary channels on one shard can; owned and queued ones cannot."""
        layer = self.layer(at_least_once=["tasks.*"])
        self.assertIs(layer.can_receive_sync(["http.request", "other"]), True)
        self.assertIs(layer.can_receive_sync(["http.request", "reply!x"]), False)
        self.assertIs(layer.can_receive_sync(["body?x"]), False)
        self.assertIs(layer.can_receive_sync(["tasks.default"]), False)

    def test_receive_is_one_blpop(self):
        """A receive in a thread is one BLPOP, and counts in the stats."""
        layer = self.layer()
        layer.send_sync("plain", {"n": 1})
        layer.receive_any_sync(["plain"], timeout=5)
        reset_stats(self.urls[0])
        layer.send_sync("plain", {"n": 2})
        channel, message = layer.receive_any_sync(["other", "plain"], timeout=5)
        self.assertEqual((channel, message), ("plain", {"n": 2}))
        calls = commandstats(self.urls[0])
        self.assertEqual(calls.get("blpop"), 1)
        self.assertNotIn("blmpop", calls)
        stats = layer.stats_sync(["plain"])["plain"]
        self.assertEqual((stats["sent"], stats["received"]), (2, 2))
        self.assertEqual(stats["consumers"], 1)

    def test_timeout(self):
        layer = self.layer()
        started = time.monotonic()
        with self.assertRaises(TimeoutError):
            layer.receive_any_sync(["empty"], timeout=0.2)
        self.assertLess(time.monotonic() - started, 2)

    def test_expired_message_is_dropped(self):
        layer = self.layer(expiry=1)
        layer.send_sync("old", {"n": 1})
        time.sleep(1.2)
        layer.send_sync("old", {"n": 2})
        self.assertEqual(layer.receive_any_sync(["old"], timeout=5)[1], {"n": 2})

    def test_threads_receive_each_message_once(self):
        """Four threads popping one channel get its 400 messages once each."""
        layer = self.layer(capacity=1000)
        for n in range(400):
            layer.send_sync("shared", {"n": n})
        got = []
        lock = threading.Lock()

        def receive():
            while True:
                try:
                    _, message = layer.receive_any_sync(["shared"], timeout=0.5)
                except TimeoutError:
                    return
                with lock:
                    got.append(message["n"])

        threads = [threading.Thread(target=receive) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        self.assertEqual(sorted(got), list(range(400)))

    def test_unreachable(self):
        """An unreachable Redis raises ChannelLayerUnavailable, not a hang."""
        layer = self.layer()
        self.redis_servers[0].stop()
        with self.assertLogs("django_fork.channels.layers", "WARNING"):
            with self.assertRaises(ChannelLayerUnavailable):
                layer.receive_any_sync(["plain"], timeout=5)


@override_settings(ROOT_URLCONF="channel_path_tests.urls")
class WorkerThreadTests(RedisTestCase):
    """The worker's receiving threads over Redis, end to end."""

    def setUp(self):
        super().setUp()
        backend = "django_fork.channels.layers.redis.RedisChannelLayer"
        self.enterContext(
            override_settings(
                CHANNEL_LAYERS={
                    "default": {"BACKEND": backend, "LOCATION": self.urls[0]}
                }
            )
        )

    def serve(self, *requests):
        """Return the (status, headers, body) of each (method, path, body)."""
        from channel_path_tests.harness import request, running_worker

        layer = get_channel_layer()
        self.addCleanup(layer.close_sync)

        async def main():
            async with running_worker(layer) as worker:
                app = InterfaceApplication(chunk_size=16 * 1024)
                responses = [
                    await request(app, method, path, body=body, query_string=query)
                    for method, path, query, body in requests
                ]
                self.assertEqual(worker.thread_channels, [HTTP_REQUEST_CHANNEL])
                return responses

        return asyncio.run(main())

    def test_split_channels(self):
        """
        Sync consumers on channels the layer can block on go to the threads;
        async ones and at-least-once channels stay on the event loop.
        """
        from django_fork.channels.worker import Worker

        def sync_consumer(message):
            pass

        async def async_consumer(message):
            pass

        layer = self.layer(at_least_once=["queued"])
        worker = Worker(
            layer,
            routes={
                "plain": sync_consumer,
                "queued": sync_consumer,
                "later": async_consumer,
            },
        )
        threaded, looped = worker.split_channels()
        self.assertEqual(threaded, [HTTP_REQUEST_CHANNEL, "plain"])
        self.assertEqual(sorted(looped), sorted(set(worker.channels) - set(threaded)))
        self.assertIn("queued", looped)
        self.assertIn("later", looped)

    def test_view_runs_in_a_receiving_thread(self):
        [(status, _, body)] = self.serve(("GET", "/describe/", b"", b""))
        data = json.loads(body)
        self.assertEqual(status, 200)
        self.assertFalse(data["in_event_loop"])
        self.assertTrue(data["thread"].startswith("django-fork-worker-recv"))

    def test_upload_in_chunks_and_streamed_responses(self):
        """A body in chunks and streamed responses still travel whole."""
        body = bytes(range(256)) * 4000
        upload, streamed, astreamed = self.serve(
            ("POST", "/body-length/", b"", body),
            ("GET", "/stream/", b"parts=40&size=20000", b""),
            ("GET", "/astream/", b"", b""),
        )
        self.assertEqual(upload[0], 200)
        self.assertEqual(json.loads(upload[2]), {"length": len(body)})
        self.assertEqual(streamed[0], 200)
        self.assertEqual(
            streamed[2], b"".join(b"%d:" % i + b"x" * 20000 for i in range(40))
        )
        self.assertEqual(astreamed, (200, astreamed[1], b"async-0;async-1;async-2;"))

    def test_websocket_events_in_receiving_threads(self):
        """
        With sync consumers only, WebSocket frames over Redis are handled and
        answered in the receiving threads, in order, groups included.
        """
        from websocket_tests.test_threads import WEBSOCKET_CHANNELS, running_worker
        from websocket_tests.tests import Socket

        layer = get_channel_layer()
        self.addCleanup(layer.close_sync)

        async def main():
            async with running_worker() as worker:
                app = InterfaceApplication()
                echo = Socket(app, "/ws/two/")
                self.assertEqual((await echo.connect())["type"], "websocket.accept")
                for n in range(10):
                    await echo.send_text(str(n))
                texts = [(await echo.receive())["text"] for _ in range(20)]
                grouped = Socket(app, "/ws/own-then-group/")
                await grouped.connect()
                await grouped.send_text("x")
                own, group = await grouped.receive(), await grouped.receive()
                await echo.disconnect()
                await grouped.disconnect()
            return worker, texts, own["text"], group["text"]

        with self.settings(ALLOWED_HOSTS=["testserver"]):
            worker, texts, own, group = asyncio.run(main())
        self.assertTrue(WEBSOCKET_CHANNELS <= set(worker.thread_channels))
        self.assertEqual(worker.hops, 0)
        expected = []
        for n in range(10):
            expected += ["a:%d" % n, "b:%d" % n]
        self.assertEqual(texts, expected)
        self.assertEqual((own, group), ("own:x", "group:x"))
