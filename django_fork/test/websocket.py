"""
A WebSocket test client: a socket through the interface, routing, sessions
and ordering of the channel path, with no network.

    async def test_chat(self):
        await self.async_client.aforce_login(user)
        ws = WebsocketTestClient("/ws/chat/lobby/", client=self.async_client)
        async with ws:
            await ws.send_text("hello")
            self.assertEqual(await ws.receive_text(), "ada: hello")
            self.assertTrue(await ws.receive_nothing())
"""

import asyncio
import json

from asgiref.testing import ApplicationCommunicator

from django_fork.channels.interface import InterfaceApplication
from django_fork.channels.layers import DEFAULT_CHANNEL_LAYER_ALIAS, channel_layers
from django_fork.test.worker import InProcessWorker

__all__ = ["WebsocketTestClient"]


class WebsocketTestClient:
    """
    Open a WebSocket to path. cookies (a dict) or client (a django.test
    Client whose cookies, e.g. after login(), go with the handshake) set the
    Cookie header; headers adds raw header pairs. A worker consuming the
    layer's WebSocket channels runs in the test's event loop while the
    socket is open, unless worker=False (when a worker of the test's own
    runs).
    """

    def __init__(
        self,
        path,
        *,
        headers=(),
        cookies=None,
        client=None,
        subprotocols=(),
        layer=DEFAULT_CHANNEL_LAYER_ALIAS,
        worker=True,
        interface_options=None,
    ):
        self.path = path
        cookie_pairs = dict(cookies or {})
        if client is not None:
            cookie_pairs.update(
                (name, morsel.value) for name, morsel in client.cookies.items()
            )
        headers = [(bytes(k), bytes(v)) for k, v in headers]
        headers.insert(0, (b"host", b"testserver"))
        if cookie_pairs:
            cookie = "; ".join("%s=%s" % item for item in cookie_pairs.items())
            headers.append((b"cookie", cookie.encode("latin1")))
        path, _, query = path.partition("?")
        self.scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "scheme": "ws",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": headers,
            "client": ["127.0.0.1", 50000],
            "server": ["testserver", 80],
            "subprotocols": list(subprotocols),
            "extensions": {"websocket.http.response": {}},
        }
        self.layer_alias = layer
        self.interface = InterfaceApplication(
            layer_alias=layer, **(interface_options or {})
        )
        self.run_worker = worker
        self._worker = None
        self._worker_task = None
        self.communicator = None
        #: The subprotocol the consumer accepted, after connect().
        self.subprotocol = None
        #: The close code of a refused or closed socket.
        self.close_code = None

    async def __aenter__(self):
        accepted = await self.connect()
        if not accepted:
            await self._stop_worker()
            raise AssertionError(
                "The WebSocket to %s was refused (%s)." % (self.path, self.close_code)
            )
        return self

    async def __aexit__(self, *exc_info):
        await self.disconnect()

    async def connect(self, timeout=5):
        """Open the socket; return True if accepted, False if refused."""
        if self.run_worker:
            self._worker = InProcessWorker(channel_layers[self.layer_alias], threads=2)
            self._worker_task = asyncio.ensure_future(self._worker.run())
        self.communicator = ApplicationCommunicator(self.interface, self.scope)
        await self.communicator.send_input({"type": "websocket.connect"})
        answer = await self.communicator.receive_output(timeout)
        if answer["type"] == "websocket.accept":
            self.subprotocol = answer.get("subprotocol")
            return True
        if answer["type"] == "websocket.http.response.start":
            self.close_code = answer["status"]
        else:
            self.close_code = answer.get("code", 1000)
        await self._stop_worker()
        return False

    async def send_text(self, text):
        await self.communicator.send_input({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data):
        await self.communicator.send_input({"type": "websocket.receive", "bytes": data})

    async def send_json(self, content):
        await self.send_text(json.dumps(content))

    async def receive_output(self, timeout=1):
        """Return the next ASGI event the interface sent to the client."""
        message = await self.communicator.receive_output(timeout)
        if message["type"] == "websocket.close":
            self.close_code = message.get("code", 1000)
        return message

    async def receive_text(self, timeout=1):
        message = await self.receive_output(timeout)
        if message.get("type") != "websocket.send" or message.get("text") is None:
            raise AssertionError("Expected a text frame, got %r." % (message,))
        return message["text"]

    async def receive_bytes(self, timeout=1):
        message = await self.receive_output(timeout)
        if message.get("type") != "websocket.send" or message.get("bytes") is None:
            raise AssertionError("Expected a bytes frame, got %r." % (message,))
        return message["bytes"]

    async def receive_json(self, timeout=1):
        return json.loads(await self.receive_text(timeout))

    async def receive_nothing(self, timeout=0.1):
        """Return True if nothing arrives for the client within timeout."""
        return await self.communicator.receive_nothing(timeout)

    async def disconnect(self, code=1000, timeout=5):
        """Close the socket from the client's side, then stop the worker."""
        if self.communicator is not None:
            await self.communicator.send_input(
                {"type": "websocket.disconnect", "code": code}
            )
            await self.communicator.wait(timeout)
            # Let the worker handle the disconnect before it stops.
            await self._drain()
        await self._stop_worker()

    async def _drain(self):
        layer = channel_layers[self.layer_alias]
        for _ in range(100):
            stats = await layer.stats(["websocket.disconnect", "websocket.receive"])
            if all(s["depth"] == 0 for s in stats.values()):
                break
            await asyncio.sleep(0.01)

    async def _stop_worker(self):
        if self._worker_task is not None:
            self._worker.stop()
            await asyncio.wait_for(self._worker_task, 10)
            self._worker_task = None
