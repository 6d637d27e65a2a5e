"""
WebSockets served in the worker's receiving threads: when every route is a
sync consumer, a frame is received, handled and answered in one thread,
with the layer's sync methods and no hop to the event loop.
"""

import logging

from django.test import SimpleTestCase, override_settings

from django_fork.channels.interface import InterfaceApplication
from django_fork.channels.messages import (
    WEBSOCKET_CONNECT_CHANNEL,
    WEBSOCKET_DISCONNECT_CHANNEL,
    WEBSOCKET_RECEIVE_CHANNEL,
)
from django_fork.channels.worker import Worker

from .tests import Socket, assert_frames_in_order, layers
from .tests import running_worker as worker_of

WEBSOCKET_CHANNELS = {
    WEBSOCKET_CONNECT_CHANNEL,
    WEBSOCKET_RECEIVE_CHANNEL,
    WEBSOCKET_DISCONNECT_CHANNEL,
}


class CountingWorker(Worker):
    """A worker that counts the coroutines its threads run on its loop."""

    hops = 0

    def call_from_thread(self, coroutine):
        self.hops += 1
        return super().call_from_thread(coroutine)


def running_worker(routing="websocket_tests.sync_routing", threads=4):
    return worker_of(threads, routing, worker=CountingWorker)


@override_settings(
    CHANNEL_LAYERS=layers(capacity=5000),
    ALLOWED_HOSTS=["testserver"],
    SESSION_ENGINE="django.contrib.sessions.backends.cache",
)
class ReceivingThreadTests(SimpleTestCase):
    async def test_sync_routes_are_served_in_threads(self):
        async with running_worker() as worker:
            socket = Socket(InterfaceApplication(), "/ws/echo/")
            self.assertEqual((await socket.connect())["type"], "websocket.accept")
            for n in range(20):
                await socket.send_text(str(n))
                self.assertEqual((await socket.receive())["text"], "echo:%d" % n)
            await socket.disconnect()
        self.assertTrue(WEBSOCKET_CHANNELS <= set(worker.thread_channels))
        self.assertEqual(worker.hops, 0)

    async def test_an_async_route_keeps_them_on_the_loop(self):
        async with running_worker("websocket_tests.routing") as worker:
            socket = Socket(InterfaceApplication(), "/ws/echo/")
            await socket.connect()
            await socket.send_text("hi")
            self.assertEqual((await socket.receive())["text"], "echo:hi")
        self.assertFalse(WEBSOCKET_CHANNELS & set(worker.thread_channels))
        self.assertTrue(WEBSOCKET_CHANNELS <= set(worker.loop_channels))
        # The sync consumer's sends went through the loop.
        self.assertGreater(worker.hops, 0)

    async def test_frames_of_each_socket_stay_in_order(self):
        """20 sockets x 100 frames, 4 receiving threads: each in order."""
        await assert_frames_in_order(self, running_worker(threads=4), frames=100)

    async def test_two_frames_per_frame_keep_their_order(self):
        async with running_worker():
            socket = Socket(InterfaceApplication(), "/ws/two/")
            await socket.connect()
            for n in range(5):
                await socket.send_text(str(n))
            texts = [(await socket.receive())["text"] for _ in range(10)]
        expected = []
        for n in range(5):
            expected += ["a:%d" % n, "b:%d" % n]
        self.assertEqual(texts, expected)

    async def test_own_frame_then_group(self):
        async with running_worker():
            socket = Socket(InterfaceApplication(), "/ws/own-then-group/")
            await socket.connect()
            await socket.send_text("x")
            self.assertEqual((await socket.receive())["text"], "own:x")
            self.assertEqual((await socket.receive())["text"], "group:x")

    async def test_failing_consumer_still_acknowledges(self):
        """A consumer raises after a send: its frame goes, and the next."""
        with self.assertLogs("django_fork.channels.websockets", logging.ERROR):
            async with running_worker():
                socket = Socket(InterfaceApplication(), "/ws/send-then-fail/")
                await socket.connect()
                await socket.send_text("1")
                self.assertEqual((await socket.receive())["text"], "before:1")
                await socket.send_text("2")
                self.assertEqual((await socket.receive())["text"], "before:2")

    async def test_consumer_failing_on_connect_refuses_the_handshake(self):
        """
        The worker answers the handshake (a close, which the interface turns
        into a refusal) rather than leaving it to the interface's timeout.
        """
        with self.assertLogs("django_fork.channels.websockets", logging.ERROR):
            async with running_worker():
                socket = Socket(InterfaceApplication(), "/ws/nested/connect-fails/")
                self.assertEqual((await socket.connect())["type"], "websocket.close")

    async def test_refused_and_unrouted_handshakes(self):
        async with running_worker():
            socket = Socket(InterfaceApplication(), "/ws/refuse/")
            self.assertEqual((await socket.connect())["type"], "websocket.close")
            with self.assertLogs("django_fork.channels.websockets", logging.WARNING):
                socket = Socket(InterfaceApplication(), "/ws/nowhere/")
                self.assertEqual((await socket.connect())["type"], "websocket.close")

    async def test_channel_session_across_frames(self):
        async with running_worker():
            socket = Socket(InterfaceApplication(), "/ws/count/")
            await socket.connect()
            for n in range(1, 4):
                await socket.send_text("x")
                self.assertEqual((await socket.receive())["text"], str(n))
