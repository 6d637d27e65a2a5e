"""
Redis killed and restarted under the layer: receives wait it out, sends fail
fast with ChannelLayerUnavailable, and everything resumes.
"""

import asyncio
import os
import tempfile
import time
from unittest import skipUnless

from redis.exceptions import TimeoutError as RedisTimeoutError

from django_fork.channels.exceptions import ChannelLayerUnavailable

from .utils import RedisTestCase, start_worker, stop_process

#: How long traffic may take to resume after Redis is back. The layer
#: retries with backoff capped at max_backoff (2 s by default).
RESUME_WITHIN = 10


async def send_when_back(layer, channel, message, within=RESUME_WITHIN):
    """Send, retrying while Redis is unavailable; return seconds it took."""
    start = time.monotonic()
    while True:
        try:
            await layer.send(channel, message)
            return time.monotonic() - start
        except ChannelLayerUnavailable:
            if time.monotonic() - start > within:
                raise
            await asyncio.sleep(0.1)


class OutageTests(RedisTestCase):
    layer_options = {"at_least_once": ["tasks.*"], "visibility_timeout": 5}

    @property
    def server(self):
        return self.redis_servers[0]

    async def test_blocking_receives_survive_a_restart(self):
        """
        Receives waiting when Redis is killed do not raise; they get the
        messages sent once it is back, within a few seconds.
        """
        layer, sender = self.layer(), self.layer()
        reply = await layer.new_channel("http.response")
        with self.assertLogs("django_fork.channels.layers", "WARNING") as logs:
            waiting = {
                name: asyncio.ensure_future(layer.receive(name))
                for name in ["jobs", "tasks.restart", reply]
            }
            await asyncio.sleep(0.3)
            self.server.kill()
            await asyncio.sleep(1.5)
            for task in waiting.values():
                self.assertFalse(task.done())
            self.server.restart()
            for name in waiting:
                await send_when_back(sender, name, {"type": "t", "name": name})
            done, pending = await asyncio.wait(waiting.values(), timeout=RESUME_WITHIN)
        self.assertEqual(pending, set())
        for name, task in waiting.items():
            self.assertEqual(task.result()["name"], name)
        output = "\n".join(logs.output)
        self.assertIn("is unreachable", output)
        self.assertIn("is reachable again", output)

    async def test_sends_during_an_outage_fail_fast(self):
        """While Redis is down, sends raise ChannelLayerUnavailable at once."""
        layer = self.layer()
        await layer.send("jobs", {"type": "t"})
        self.server.kill()
        try:
            for operation in [
                lambda: layer.send("jobs", {"type": "t"}),
                lambda: layer.send("tasks.x", {"type": "t"}),
                lambda: layer.group_send("room", {"type": "t"}),
                lambda: layer.group_add("room", "member"),
            ]:
                start = time.monotonic()
                with self.assertRaises(ChannelLayerUnavailable):
                    await operation()
                self.assertLess(time.monotonic() - start, 1)
            start = time.monotonic()
            with self.assertRaises(ChannelLayerUnavailable):
                layer.send_sync("jobs", {"type": "t"})
            self.assertLess(time.monotonic() - start, 1)
        finally:
            self.server.restart()
        self.assertLess(await send_when_back(layer, "jobs", {"type": "t"}), 5)
        self.assertEqual((await layer.receive("jobs"))["type"], "t")

    def test_sync_sends_survive_a_restart(self):
        """
        A thread's connection from before a restart is replaced: the first
        send after it succeeds, small or large, without an error.
        """
        layer = self.layer()
        large = {"type": "t", "body": b"x" * 65536}
        layer.send_sync("jobs", {"type": "t"})
        layer.send_sync("jobs", large)
        self.server.kill()
        self.server.restart()
        layer.send_sync("jobs", {"type": "t", "n": 1})
        layer.send_sync("jobs", {**large, "n": 2})
        self.assertEqual(layer.receive_sync("jobs")["n"], 1)
        self.assertEqual(layer.receive_sync("jobs")["n"], 2)

    def test_processes_survive_restarts(self):
        """
        A worker process answering requests keeps running through Redis
        being killed and restarted twice, during its blocking receives and
        while requests are being sent; answers resume within seconds.
        """
        log_path = os.path.join(tempfile.mkdtemp(), "worker.log")
        with open(log_path, "wb") as log:
            worker = start_worker("echo", self.urls[0], log=log)
        self.addCleanup(stop_process, worker)
        layer = self.layer()

        async def traffic():
            reply = await layer.new_channel("http.response")
            n = 0

            async def request(within=RESUME_WITHIN):
                nonlocal n
                n += 1
                await send_when_back(
                    layer, "requests", {"type": "t", "n": n, "reply": reply}, within
                )
                while True:
                    answer = await asyncio.wait_for(layer.receive(reply), within)
                    if answer["n"] == n:
                        return

            # The worker is up and answering.
            await request(within=30)
            for outage in range(2):
                for _ in range(20):
                    await request()
                self.server.kill()
                start = time.monotonic()
                with self.assertRaises(ChannelLayerUnavailable):
                    await layer.send("requests", {"type": "t", "n": 0, "reply": reply})
                self.assertLess(time.monotonic() - start, 1)
                await asyncio.sleep(1)
                self.server.restart()
                back = time.monotonic()
                await request()
                self.assertLess(time.monotonic() - back, RESUME_WITHIN)
                self.assertIsNone(worker.poll(), "The worker exited.")

        asyncio.run(traffic())
        self.assertIsNone(worker.poll(), "The worker exited.")
        with open(log_path) as f:
            log = f.read()
        self.assertIn("is unreachable", log)
        self.assertIn("is reachable again", log)


class WatchdogTests(RedisTestCase):
    async def start_hanging_command(self, layer):
        """Return a task running a command that never gets an answer."""
        await layer.send("warm", {"n": 1})
        state = layer._states[asyncio.get_running_loop()]
        started = asyncio.Event()

        async def hang(link):
            started.set()
            await asyncio.Event().wait()

        task = asyncio.ensure_future(state.command(layer._single, hang))
        await started.wait()
        return state, task

    async def test_unanswered_command_times_out(self):
        layer = self.layer(socket_timeout=0.3)
        _, task = await self.start_hanging_command(layer)
        with self.assertRaisesMessage(RedisTimeoutError, "did not answer within 0.3 s"):
            await asyncio.wait_for(task, 5)

    @skipUnless(hasattr(asyncio.Task, "uncancel"), "Python 3.11+")
    async def test_cancellation_is_not_taken_for_a_timeout(self):
        """
        A command cancelled from outside (asyncio.run() ending, say) just as
        the watchdog times it out raises CancelledError, not a timeout that a
        loop would retry: the loop must end.
        """
        layer = self.layer()
        state, task = await self.start_hanging_command(layer)
        # The watchdog's cancellation, and one from outside.
        state.expired.add(task)
        task.cancel()
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await task


class ShardOutageTests(RedisTestCase):
    servers = 3

    async def test_new_streams_avoid_a_shard_that_is_down(self):
        """
        Once a send found a shard down, new single-reader channels are
        named to live on the other shards, and their streams go through.
        """
        layer = self.layer()
        victim = self.redis_servers[0]
        down = next(
            shard for shard in layer.shards.values() if str(victim.port) in shard.name
        )
        victim.kill()
        self.addCleanup(victim.start)
        for _ in range(50):
            name = await layer.new_channel("stream?")
            if layer._home(name) is down:
                break
        with self.assertRaises(ChannelLayerUnavailable):
            await layer.send(name, {"type": "t"})
        for _ in range(20):
            name = await layer.new_channel("stream?")
            self.assertIsNot(layer._home(name), down)
            await layer.send(name, {"type": "t", "n": 1})
            self.assertEqual((await asyncio.wait_for(layer.receive(name), 5))["n"], 1)
