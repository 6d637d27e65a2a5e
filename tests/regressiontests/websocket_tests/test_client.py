"""The WebSocket test client: routing, sessions and ordering, no sockets."""

from django.contrib.auth.models import User
from django.test import TestCase, override_settings

from django_fork.test import WebsocketTestClient

from .tests import layers


@override_settings(
    CHANNEL_LAYERS=layers(),
    CHANNEL_ROUTING="websocket_tests.routing",
    SESSION_ENGINE="django.contrib.sessions.backends.db",
    ROOT_URLCONF="websocket_tests.urls",
)
class WebsocketTestClientTests(TestCase):
    async def test_send_and_receive(self):
        async with WebsocketTestClient("/ws/echo/") as ws:
            await ws.send_text("hi")
            self.assertEqual(await ws.receive_text(), "echo:hi")
            await ws.send_bytes(b"abc")
            self.assertEqual(await ws.receive_bytes(), b"cba")
            self.assertTrue(await ws.receive_nothing())

    async def test_json_and_subprotocol(self):
        async with WebsocketTestClient("/ws/json/lobby/") as ws:
            self.assertEqual(ws.subprotocol, "json.v1")
            await ws.send_json({"a": 1})
            self.assertEqual(
                await ws.receive_json(), {"got": {"a": 1}, "room": "lobby"}
            )

    async def test_refused(self):
        ws = WebsocketTestClient("/ws/refuse/")
        self.assertIs(await ws.connect(), False)
        self.assertEqual(ws.close_code, 1008)

    async def test_server_close(self):
        async with WebsocketTestClient("/ws/echo/") as ws:
            await ws.send_text("close")
            self.assertEqual((await ws.receive_output())["type"], "websocket.close")
            self.assertEqual(ws.close_code, 4000)

    async def test_session_and_user_from_the_client(self):
        """A logged-in test client's cookies reach the consumer's session."""
        user = await User.objects.acreate(username="ada")
        await self.async_client.aforce_login(user)
        await self.async_client.get("/remember/", {"name": "Ada"})
        async with WebsocketTestClient("/ws/whoami/", client=self.async_client) as ws:
            await ws.send_text("who")
            self.assertEqual(await ws.receive_text(), "Ada/ada")

    async def test_channel_session_keeps_frames_in_order(self):
        async with WebsocketTestClient("/ws/sequence/") as ws:
            for n in range(50):
                await ws.send_text(str(n))
            await ws.send_text("done")
            self.assertEqual(await ws.receive_text(timeout=5), "done:50")
