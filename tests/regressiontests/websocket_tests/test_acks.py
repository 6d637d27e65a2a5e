"""
The acknowledgement of a frame rides on the consumer's last message to the
socket; a dispatcher resolves a path's route once.
"""

import asyncio
import json
import logging

from django.test import SimpleTestCase, override_settings

from django_fork.channels.codecs import (
    websocket_connect_message,
    websocket_receive_message,
)
from django_fork.channels.interface import InterfaceApplication
from django_fork.channels.layers import get_channel_layer
from django_fork.channels.messages import WEBSOCKET_RECEIVE_CHANNEL
from django_fork.channels.routing import Routing
from django_fork.channels.websockets import ROUTE_CACHE_SIZE, WebSocketDispatcher
from django_fork.channels.worker import Worker

from . import consumers
from .tests import Socket, layers, running_worker, ws_scope


class CountingRouting(Routing):
    """The test routing, counting the paths it resolves."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.resolved = []

    def resolve_websocket(self, path):
        self.resolved.append(path)
        return super().resolve_websocket(path)


def counting_routing():
    routing = Routing.from_setting("websocket_tests.routing")
    return CountingRouting(routing.channel_routes, routing.websocket_urlpatterns)


async def frames(path, texts, threads=2):
    """
    Send texts as frames 1, 2, ... of one socket straight to the
    receive channel, each once the previous one was acknowledged;
    return what the worker put on the reply channel.
    """
    layer = get_channel_layer()
    reply_channel = await layer.new_channel("websocket.send")
    connect = websocket_connect_message(ws_scope(path), reply_channel)
    replies = []
    async with running_worker(threads=threads):
        for seq, text in enumerate(texts, 1):
            await layer.send(
                WEBSOCKET_RECEIVE_CHANNEL,
                websocket_receive_message(connect, seq, text),
            )
            while True:
                reply = await asyncio.wait_for(layer.receive(reply_channel), 5)
                replies.append(reply)
                if reply.get("ack", reply.get("seq")) == seq:
                    break
    return replies


@override_settings(CHANNEL_LAYERS=layers(capacity=100), ALLOWED_HOSTS=["testserver"])
class AcknowledgementTests(SimpleTestCase):
    """What a worker puts on the reply channel for each frame."""

    async def test_reply_carries_the_ack(self):
        """An echo is one message: the frame, acknowledging the client's."""
        replies = await frames("/ws/echo/", ["x", "y"])
        self.assertEqual(
            replies,
            [
                {"type": "websocket.send", "text": "echo:x", "ack": 1},
                {"type": "websocket.send", "text": "echo:y", "ack": 2},
            ],
        )

    async def test_silent_consumer_gets_a_bare_ack(self):
        replies = await frames("/ws/order/", ["1", "2"])
        self.assertEqual(
            replies,
            [
                {"type": "websocket.ack", "seq": 1},
                {"type": "websocket.ack", "seq": 2},
            ],
        )

    async def test_only_the_last_reply_carries_the_ack(self):
        """Two frames per frame: in order, the ack on the second."""
        for path in ("/ws/two/", "/ws/async-two/"):
            with self.subTest(path=path):
                replies = await frames(path, ["1", "2"])
                self.assertEqual(
                    replies,
                    [
                        {"type": "websocket.send", "text": "a:1"},
                        {"type": "websocket.send", "text": "b:1", "ack": 1},
                        {"type": "websocket.send", "text": "a:2"},
                        {"type": "websocket.send", "text": "b:2", "ack": 2},
                    ],
                )

    async def test_group_send_goes_after_the_held_frame(self):
        """
        A group_send() after a send() to a group the socket is in: the
        socket gets its own frame first, then the group's, then the ack.
        """
        layer = get_channel_layer()
        reply_channel = await layer.new_channel("websocket.send")
        await layer.group_add("acks", reply_channel)
        connect = websocket_connect_message(
            ws_scope("/ws/own-then-group/"), reply_channel
        )
        async with running_worker():
            await layer.send(
                WEBSOCKET_RECEIVE_CHANNEL, websocket_receive_message(connect, 1, "x")
            )
            replies = [
                await asyncio.wait_for(layer.receive(reply_channel), 5)
                for _ in range(3)
            ]
        self.assertEqual(
            replies,
            [
                {"type": "websocket.send", "text": "own:x"},
                {"type": "websocket.send", "text": "group:x"},
                {"type": "websocket.ack", "seq": 1},
            ],
        )

    async def test_consumer_that_fails_after_a_send(self):
        """What the consumer sent before it raised still goes, with the ack."""
        with self.assertLogs("django_fork.channels.websockets", logging.ERROR):
            replies = await frames("/ws/send-then-fail/", ["x"])
        self.assertEqual(
            replies, [{"type": "websocket.send", "text": "before:x", "ack": 1}]
        )

    async def test_close_carries_the_ack(self):
        replies = await frames("/ws/echo/", ["close"])
        self.assertEqual(replies, [{"type": "websocket.close", "code": 4000, "ack": 1}])

    async def test_close_in_a_frame_lets_the_disconnect_through(self):
        """
        A consumer's close() acknowledges its frame, so the client's closing
        handshake reaches the workers with the client's code, not the 1011
        of a frame never acknowledged.
        """
        consumers.disconnects.clear()
        app = InterfaceApplication(websocket_ack_timeout=30)
        async with running_worker():
            socket = Socket(app, "/ws/echo/")
            await socket.connect()
            await socket.send_text("close")
            self.assertEqual(
                await socket.receive(), {"type": "websocket.close", "code": 4000}
            )
            # Frames the client sent before it saw the close are dropped.
            await socket.send_text("late")
            await socket.disconnect(4000)
            for _ in range(500):
                if consumers.disconnects:
                    break
                await asyncio.sleep(0.01)
        self.assertEqual(consumers.disconnects, [4000])

    async def test_echo_through_the_interface(self):
        """The interface relays the frame that acknowledges, then the next."""
        app = InterfaceApplication(websocket_ack_timeout=30)
        async with running_worker():
            socket = Socket(app, "/ws/two/")
            await socket.connect()
            for n in range(3):
                await socket.send_text(str(n))
            received = [(await socket.receive())["text"] for _ in range(6)]
            await socket.disconnect()
        self.assertEqual(received, ["a:0", "b:0", "a:1", "b:1", "a:2", "b:2"])


@override_settings(CHANNEL_LAYERS=layers(capacity=100), ALLOWED_HOSTS=["testserver"])
class RouteCacheTests(SimpleTestCase):
    def dispatcher(self):
        worker = Worker(get_channel_layer(), routing=counting_routing())
        return WebSocketDispatcher(worker, worker.routing)

    def test_a_path_is_resolved_once(self):
        dispatcher = self.dispatcher()
        first = dispatcher.resolve("/ws/echo/")
        for _ in range(10):
            self.assertIs(dispatcher.resolve("/ws/echo/"), first)
        dispatcher.resolve("/ws/two/")
        self.assertEqual(dispatcher.routing.resolved, ["/ws/echo/", "/ws/two/"])

    def test_the_cache_is_bounded(self):
        dispatcher = self.dispatcher()
        for n in range(ROUTE_CACHE_SIZE + 10):
            dispatcher.resolve("/ws/kwargs/room-%d/" % n)
        self.assertEqual(len(dispatcher._matches), ROUTE_CACHE_SIZE)
        # The least recently used went first.
        dispatcher.resolve("/ws/kwargs/room-0/")
        self.assertEqual(dispatcher.routing.resolved[-1], "/ws/kwargs/room-0/")
        self.assertEqual(len(dispatcher.routing.resolved), ROUTE_CACHE_SIZE + 11)

    def test_misses_are_not_kept(self):
        from django.urls import Resolver404

        dispatcher = self.dispatcher()
        for _ in range(2):
            with self.assertRaises(Resolver404):
                dispatcher.resolve("/ws/nowhere/")
        self.assertEqual(dispatcher._matches, {})

    async def test_consumers_get_their_own_kwargs(self):
        """A consumer that changes self.kwargs changes no later frame's."""
        replies = await frames("/ws/kwargs/lobby/", ["1", "2"])
        self.assertEqual(
            [json.loads(reply["text"]) for reply in replies],
            [{"room": "lobby"}, {"room": "lobby"}],
        )
