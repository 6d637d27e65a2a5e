"""WebSockets over the channel layer: interface relay, ordering, groups."""

import asyncio
import json
import logging

from asgiref.testing import ApplicationCommunicator
from django.test import SimpleTestCase, override_settings

from django_fork.channels.interface import InterfaceApplication
from django_fork.channels.layers import get_channel_layer
from django_fork.channels.routing import Routing
from django_fork.channels.worker import Worker

from . import consumers

IN_MEMORY = "django_fork.channels.layers.inmemory.InMemoryChannelLayer"


def layers(**options):
    return {"default": {"BACKEND": IN_MEMORY, "OPTIONS": options}}


def ws_scope(path, headers=(), extensions=None):
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ["127.0.0.1", 50000],
        "server": ["testserver", 80],
        "subprotocols": [],
        "extensions": extensions or {},
    }


class Socket:
    """A WebSocket client talking to the interface through ASGI events."""

    def __init__(self, app, path, **scope):
        self.communicator = ApplicationCommunicator(app, ws_scope(path, **scope))

    async def connect(self, timeout=5):
        await self.communicator.send_input({"type": "websocket.connect"})
        return await self.communicator.receive_output(timeout)

    async def send_text(self, text):
        await self.communicator.send_input({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data):
        await self.communicator.send_input({"type": "websocket.receive", "bytes": data})

    async def receive(self, timeout=5):
        return await self.communicator.receive_output(timeout)

    async def disconnect(self, code=1000):
        await self.communicator.send_input(
            {"type": "websocket.disconnect", "code": code}
        )
        await self.communicator.wait(5)


class running_worker:
    def __init__(self, threads=4, routing="websocket_tests.routing", worker=Worker):
        self.worker = worker(
            get_channel_layer(), routing=Routing.from_setting(routing), threads=threads
        )

    async def __aenter__(self):
        self.task = asyncio.ensure_future(self.worker.run())
        return self.worker

    async def __aexit__(self, *exc_info):
        self.worker.stop()
        await asyncio.wait_for(self.task, 10)


async def assert_frames_in_order(testcase, worker, sockets=20, frames=200):
    """
    Send frames 0..frames - 1 on each of sockets sockets at once through the
    running_worker worker; the order consumer must see each socket's in order.
    """
    consumers.seen.clear()
    app = InterfaceApplication()
    async with worker:
        connected = [Socket(app, "/ws/order/") for _ in range(sockets)]
        for socket in connected:
            await socket.connect()

        async def send_all(socket):
            for n in range(frames):
                await socket.send_text(str(n))

        await asyncio.gather(*(send_all(socket) for socket in connected))
        for _ in range(1000):
            if sum(map(len, consumers.seen.values())) == sockets * frames:
                break
            await asyncio.sleep(0.01)
    testcase.assertEqual(len(consumers.seen), sockets)
    for numbers in consumers.seen.values():
        testcase.assertEqual(numbers, list(range(frames)))


@override_settings(CHANNEL_LAYERS=layers(capacity=5000), ALLOWED_HOSTS=["testserver"])
class WebSocketTests(SimpleTestCase):
    async def test_echo_text_and_bytes(self):
        async with running_worker():
            socket = Socket(InterfaceApplication(), "/ws/echo/")
            self.assertEqual((await socket.connect())["type"], "websocket.accept")
            await socket.send_text("hi")
            self.assertEqual(
                await socket.receive(), {"type": "websocket.send", "text": "echo:hi"}
            )
            await socket.send_bytes(b"abc")
            self.assertEqual(
                await socket.receive(), {"type": "websocket.send", "bytes": b"cba"}
            )
            consumers.disconnects.clear()
            await socket.disconnect(1001)
            for _ in range(100):
                if consumers.disconnects:
                    break
                await asyncio.sleep(0.01)
        self.assertEqual(consumers.disconnects, [1001])

    async def test_server_close(self):
        async with running_worker():
            socket = Socket(InterfaceApplication(), "/ws/echo/")
            await socket.connect()
            await socket.send_text("close")
            self.assertEqual(
                await socket.receive(), {"type": "websocket.close", "code": 4000}
            )
            await socket.disconnect(4000)

    async def test_consumer_refuses(self):
        """A close before accept refuses the handshake (servers send 403)."""
        async with running_worker():
            socket = Socket(InterfaceApplication(), "/ws/refuse/")
            self.assertEqual((await socket.connect())["type"], "websocket.close")

    async def test_no_route(self):
        with self.assertLogs("django_fork.channels.websockets", logging.WARNING):
            async with running_worker():
                socket = Socket(InterfaceApplication(), "/ws/nowhere/")
                self.assertEqual((await socket.connect())["type"], "websocket.close")

    async def test_json_consumers_and_subprotocol(self):
        async with running_worker():
            socket = Socket(InterfaceApplication(), "/ws/json/lobby/")
            accept = await socket.connect()
            self.assertEqual(accept["subprotocol"], "json.v1")
            await socket.send_text(json.dumps({"a": 1}))
            frame = await socket.receive()
            self.assertEqual(
                json.loads(frame["text"]), {"got": {"a": 1}, "room": "lobby"}
            )
            other = Socket(InterfaceApplication(), "/ws/sum/")
            await other.connect()
            await other.send_text("[1, 2, 3]")
            self.assertEqual(json.loads((await other.receive())["text"]), {"sum": 6})

    async def test_consumer_error_does_not_stall_the_socket(self):
        """A frame whose consumer raises is still acknowledged."""
        with self.assertLogs("django_fork.channels.websockets", logging.ERROR):
            async with running_worker():
                socket = Socket(InterfaceApplication(), "/ws/fail/")
                await socket.connect()
                await socket.send_text("1")
                await socket.send_text("2")
                await asyncio.sleep(0.3)
                await socket.disconnect()

    async def test_frames_of_each_socket_stay_in_order(self):
        """20 sockets x 200 frames through 4 worker threads: each in order."""
        await assert_frames_in_order(self, running_worker(threads=4), frames=200)

    async def test_group_broadcast(self):
        """A frame sent to the group reaches every member socket."""
        app = InterfaceApplication()
        async with running_worker():
            sockets = [Socket(app, "/ws/room/") for _ in range(30)]
            for socket in sockets:
                await socket.connect()
            await sockets[0].send_text("to all")
            for socket in sockets:
                self.assertEqual(
                    await socket.receive(), {"type": "websocket.send", "text": "to all"}
                )
            # A socket that left no longer gets broadcasts.
            await sockets[1].disconnect()
            await asyncio.sleep(0.1)
            await sockets[0].send_text("again")
            for socket in sockets[2:]:
                self.assertEqual((await socket.receive())["text"], "again")

    async def test_closed_socket_frees_what_it_held(self):
        """
        A socket that closes while broadcasts still reach its reply channel
        (it is in a group no worker takes it out of yet) holds nothing.
        """
        layer = get_channel_layer()
        async with running_worker():
            socket = Socket(InterfaceApplication(), "/ws/room/")
            await socket.connect()
            (reply_channel,) = layer._groups["room"]
            await layer.group_add("elsewhere", reply_channel)
            await layer.group_send("elsewhere", {"type": "websocket.send", "text": "1"})
            self.assertEqual((await socket.receive())["text"], "1")
            await socket.disconnect()
            await layer.group_send("elsewhere", {"type": "websocket.send", "text": "2"})
        stats = await layer.stats([reply_channel])
        self.assertEqual(stats[reply_channel]["depth"], 0)
        self.assertNotIn(reply_channel, layer._queues)

    async def test_broadcast_to_1000_members(self):
        layer = get_channel_layer()
        members = [await layer.new_channel("websocket.send") for _ in range(1000)]
        for member in members:
            await layer.group_add("big-room", member)
        await layer.group_send("big-room", {"type": "websocket.send", "text": "x"})
        received = [await layer.receive(member) for member in members]
        self.assertEqual(len(received), 1000)


@override_settings(CHANNEL_LAYERS=layers(), ALLOWED_HOSTS=["example.com"])
class WebSocketSecurityTests(SimpleTestCase):
    async def test_wrong_origin_refused(self):
        """A handshake from a foreign Origin is refused; others still work."""
        async with running_worker():
            app = InterfaceApplication()
            with self.assertLogs("django_fork.channels.interface", logging.WARNING):
                evil = Socket(
                    app, "/ws/echo/", headers=[(b"origin", b"http://evil.com")]
                )
                self.assertEqual(
                    await evil.connect(), {"type": "websocket.close", "code": 1008}
                )
            good = Socket(
                app, "/ws/echo/", headers=[(b"origin", b"https://example.com")]
            )
            self.assertEqual((await good.connect())["type"], "websocket.accept")
            await good.send_text("still fine")
            self.assertEqual((await good.receive())["text"], "echo:still fine")

    async def test_explicit_origin_list(self):
        async with running_worker():
            app = InterfaceApplication(websocket_allowed_origins=["https://app.test"])
            socket = Socket(
                app, "/ws/echo/", headers=[(b"origin", b"https://app.test")]
            )
            self.assertEqual((await socket.connect())["type"], "websocket.accept")

    async def test_oversized_frame_closes_only_that_socket(self):
        async with running_worker():
            app = InterfaceApplication(websocket_max_frame_size=100)
            big, small = Socket(app, "/ws/echo/"), Socket(app, "/ws/echo/")
            await big.connect()
            await small.connect()
            with self.assertLogs("django_fork.channels.interface", logging.WARNING):
                await big.send_text("x" * 101)
                self.assertEqual(
                    await big.receive(), {"type": "websocket.close", "code": 1009}
                )
            await small.send_text("ok")
            self.assertEqual((await small.receive())["text"], "echo:ok")

    @override_settings(CHANNEL_LAYERS=layers(channel_capacity={"websocket.connect": 1}))
    async def test_full_connect_channel_is_503(self):
        layer = get_channel_layer()
        await layer.send("websocket.connect", {"type": "filler"})
        socket = Socket(
            InterfaceApplication(queue_timeout=0.2),
            "/ws/echo/",
            extensions={"websocket.http.response": {}},
        )
        with self.assertLogs("django_fork.channels.interface", logging.WARNING):
            start = await socket.connect()
        self.assertEqual(
            (start["type"], start["status"]), ("websocket.http.response.start", 503)
        )

    @override_settings(CHANNEL_LAYERS=layers(channel_capacity={"websocket.receive": 1}))
    async def test_full_receive_channel_closes_1013(self):
        layer = get_channel_layer()
        socket = Socket(InterfaceApplication(queue_timeout=0.2), "/ws/echo/")
        await socket.communicator.send_input({"type": "websocket.connect"})
        connect = await asyncio.wait_for(layer.receive("websocket.connect"), 2)
        await layer.send(connect["reply_channel"], {"type": "websocket.accept"})
        self.assertEqual((await socket.receive())["type"], "websocket.accept")
        await layer.send("websocket.receive", {"type": "filler"})
        with self.assertLogs("django_fork.channels.interface", logging.WARNING):
            await socket.send_text("frame")
            self.assertEqual(
                await socket.receive(), {"type": "websocket.close", "code": 1013}
            )

    async def test_unacknowledged_frame_closes_1011(self):
        """A frame lost with its worker closes the socket, never stalls it."""
        layer = get_channel_layer()
        socket = Socket(InterfaceApplication(websocket_ack_timeout=0.2), "/ws/echo/")
        await socket.communicator.send_input({"type": "websocket.connect"})
        connect = await asyncio.wait_for(layer.receive("websocket.connect"), 2)
        await layer.send(connect["reply_channel"], {"type": "websocket.accept"})
        await socket.receive()
        with self.assertLogs("django_fork.channels.interface", logging.WARNING):
            await socket.send_text("lost")
            self.assertEqual(
                await socket.receive(), {"type": "websocket.close", "code": 1011}
            )
        disconnect = await asyncio.wait_for(layer.receive("websocket.disconnect"), 2)
        self.assertEqual((disconnect["code"], disconnect["seq"]), (1011, 1))
