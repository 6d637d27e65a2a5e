"""
The interface hosted by each ASGI server, with a separate runworker process,
over a Redis channel layer: the multi-process deployment.
"""

import json
import os
import sys

from django.test import SimpleTestCase

from django_fork.test.redis import RedisServer, require_redis

from .servers import (
    ServerProcess,
    WebSocketOverSocketsMixin,
    environment,
    free_port,
    manage,
)


def script(name):
    """Return the console script installed beside this interpreter."""
    return os.path.join(os.path.dirname(sys.executable), name)


SERVERS = {
    "uvicorn": lambda port: [
        sys.executable,
        "-m",
        "uvicorn",
        "--port",
        str(port),
        "--no-access-log",
        "server_tests.asgi:application",
    ],
    "daphne": lambda port: [
        script("daphne"),
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "server_tests.asgi:application",
    ],
    "hypercorn": lambda port: [
        script("hypercorn"),
        "-b",
        "127.0.0.1:%d" % port,
        "server_tests.asgi:application",
    ],
}


class CrossProcessMixin(WebSocketOverSocketsMixin):
    server_name = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        require_redis()
        cls.redis = RedisServer().start()
        cls.addClassCleanup(cls.redis.stop)
        env = environment(SERVER_TESTS_REDIS_URL=cls.redis.url)
        cls.worker = ServerProcess(
            manage("runworker", "--threads", "2"), env=env, wait_for_port=False
        )
        cls.addClassCleanup(cls.worker.cleanup)
        cls.port = free_port()
        cls.server = ServerProcess(
            SERVERS[cls.server_name](cls.port), port=cls.port, env=env
        )
        cls.addClassCleanup(cls.server.cleanup)

    def test_get(self):
        status, _, body = self.server.request(
            "GET", "/hello/?name=%s" % self.server_name
        )
        self.assertEqual(
            (status, body), (200, b"Hello, %s!" % self.server_name.encode())
        )

    def test_upload_and_streaming_download(self):
        body = bytes(range(256)) * 4000
        status, _, response = self.server.request(
            "POST",
            "/body-length/",
            body=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.assertEqual((status, json.loads(response)), (200, {"length": len(body)}))
        status, _, response = self.server.request("GET", "/stream/?parts=5&size=200000")
        self.assertEqual((status, len(response)), (200, 5 * 200_002))

    def test_async_streaming(self):
        status, _, body = self.server.request("GET", "/astream/")
        self.assertEqual((status, body), (200, b"async-0;async-1;async-2;"))


class UvicornTests(CrossProcessMixin, SimpleTestCase):
    server_name = "uvicorn"


class DaphneTests(CrossProcessMixin, SimpleTestCase):
    server_name = "daphne"


class HypercornTests(CrossProcessMixin, SimpleTestCase):
    server_name = "hypercorn"


class WebSocketOrderingTests(SimpleTestCase):
    """
    20 sockets each send 250 numbered frames through an interface and four
    worker processes: every socket's frames reach the consumers in order.
    """

    # 5,000 frames in all: every frame may go to another worker, so the
    # order is tested at each of them. A socket's frames are handled one at
    # a time, so on a loaded 2-core machine 20,000 frames took longer than
    # the receive timeout below.
    sockets = 20
    frames = 250

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        require_redis()
        cls.redis = RedisServer().start()
        cls.addClassCleanup(cls.redis.stop)
        env = environment(SERVER_TESTS_REDIS_URL=cls.redis.url)
        for _ in range(4):
            worker = ServerProcess(
                manage("runworker", "--threads", "2"), env=env, wait_for_port=False
            )
            cls.addClassCleanup(worker.cleanup)
        cls.port = free_port()
        # The same goes for the server's keepalive pings as for the client's
        # (below): a pong waits behind the frames not yet acknowledged.
        command = SERVERS["uvicorn"](cls.port) + ["--ws-ping-timeout", "300"]
        cls.server = ServerProcess(command, port=cls.port, env=env)
        cls.addClassCleanup(cls.server.cleanup)

    def test_frames_in_order(self):
        import asyncio

        from websockets.asyncio.client import connect as aconnect

        url = "ws://127.0.0.1:%d/ws/sequence/" % self.port

        async def one_socket():
            # No keepalive pings: the interface reads frame n + 1 only once
            # frame n is acknowledged, so a ping queued behind 1,000 frames
            # is answered only after them, which on a loaded machine takes
            # longer than the client's ping timeout. Ordering is the point
            # here; browsers send no pings at all.
            async with aconnect(url, open_timeout=20, ping_interval=None) as websocket:
                for n in range(self.frames):
                    await websocket.send(str(n))
                await websocket.send("done")
                replies = []
                while True:
                    reply = await asyncio.wait_for(websocket.recv(), 120)
                    replies.append(reply)
                    if reply.startswith("done:"):
                        return replies

        async def all_sockets():
            return await asyncio.gather(*(one_socket() for _ in range(self.sockets)))

        results = asyncio.run(all_sockets())
        self.assertEqual(results, [["done:%d" % self.frames]] * self.sockets)

    def test_broadcast_to_1000_members_over_redis(self):
        """A group_send over Redis reaches all 1,000 member channels."""
        import asyncio

        from django_fork.channels.layers.redis import RedisChannelLayer

        async def broadcast():
            layer = RedisChannelLayer(location=self.redis.url, prefix="broadcast")
            try:
                members = [
                    await layer.new_channel("websocket.send") for _ in range(1000)
                ]
                for member in members:
                    await layer.group_add("big-room", member)
                await layer.group_send(
                    "big-room", {"type": "websocket.send", "text": "x"}
                )
                return [
                    await asyncio.wait_for(layer.receive(member), 10)
                    for member in members
                ]
            finally:
                await layer.close()

        received = asyncio.run(broadcast())
        self.assertEqual(len(received), 1000)
        self.assertTrue(all(m["text"] == "x" for m in received))
