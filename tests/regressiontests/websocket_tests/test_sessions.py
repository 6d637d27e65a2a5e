"""Channel-aware sessions for WebSocket consumers."""

import asyncio

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.test import (
    Client,
    SimpleTestCase,
    TransactionTestCase,
    override_settings,
)

from django_fork.channels.interface import InterfaceApplication
from django_fork.channels.layers import get_channel_layer
from django_fork.channels.routing import Routing
from django_fork.channels.worker import Worker
from django_fork.contrib.sessions.channel import (
    channel_session_key,
    get_session_store_class,
    load_channel_session,
)

from . import consumers
from .tests import Socket, layers

CACHE_SESSIONS = "django.contrib.sessions.backends.cache"


class two_workers:
    """Two workers sharing the layer: a socket's events go to either."""

    async def __aenter__(self):
        routing = Routing.from_setting("websocket_tests.routing")
        self.workers = [
            Worker(get_channel_layer(), routing=routing, threads=2) for _ in range(2)
        ]
        self.tasks = [asyncio.ensure_future(w.run()) for w in self.workers]
        return self.workers

    async def __aexit__(self, *exc_info):
        for worker in self.workers:
            worker.stop()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 10)


@override_settings(
    CHANNEL_LAYERS=layers(),
    SESSION_ENGINE=CACHE_SESSIONS,
    ROOT_URLCONF="websocket_tests.urls",
)
class ChannelSessionTests(SimpleTestCase):
    async def test_channel_session_across_frames_and_workers(self):
        async with two_workers() as workers:
            socket = Socket(InterfaceApplication(), "/ws/count/")
            await socket.connect()
            for n in range(1, 41):
                await socket.send_text("x")
                self.assertEqual((await socket.receive())["text"], str(n))
            await socket.disconnect()
        # Both workers served the socket, and the count never reset.
        self.assertTrue(all(worker.handled > 0 for worker in workers))

    async def test_channel_session_deleted_on_disconnect(self):
        consumers.count_channels.clear()
        store = get_session_store_class()()
        async with two_workers():
            socket = Socket(InterfaceApplication(), "/ws/count/")
            await socket.connect()
            await socket.send_text("x")
            await socket.receive()
            key = channel_session_key(consumers.count_channels[0])
            self.assertTrue(await store.aexists(key))
            await socket.disconnect()
            for _ in range(100):
                if not await store.aexists(key):
                    break
                await asyncio.sleep(0.01)
        self.assertFalse(await store.aexists(key))

    def test_key_is_unguessable(self):
        """The key is an HMAC of the reply channel under SECRET_KEY."""
        key = channel_session_key("websocket.send.abc!def")
        self.assertRegex(key, r"^[0-9a-f]{40}$")
        self.assertNotIn("def", key)
        with self.settings(SECRET_KEY="another secret"):
            self.assertNotEqual(channel_session_key("websocket.send.abc!def"), key)
        self.assertNotEqual(channel_session_key("websocket.send.abc!deg"), key)

    @override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies")
    def test_signed_cookie_sessions_refused(self):
        with self.assertRaisesMessage(ImproperlyConfigured, "server-side"):
            load_channel_session("websocket.send.abc!def")


@override_settings(
    CHANNEL_LAYERS=layers(),
    SESSION_ENGINE=CACHE_SESSIONS,
    ROOT_URLCONF="websocket_tests.urls",
)
class HttpSessionTests(TransactionTestCase):
    available_apps = [
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "websocket_tests",
    ]

    async def test_http_session_and_user(self):
        """A consumer sees the session a normal view set, and its user."""
        client = Client()
        user = await sync_to_async(User.objects.create_user)("ada", password="pw")
        await sync_to_async(client.force_login)(user)
        await sync_to_async(client.get)("/remember/", {"name": "Ada"})
        cookie = client.cookies["sessionid"].value
        async with two_workers():
            socket = Socket(
                InterfaceApplication(),
                "/ws/whoami/",
                headers=[(b"cookie", b"sessionid=" + cookie.encode())],
            )
            await socket.connect()
            # Frames carry no cookie: the session key was kept at connect.
            for _ in range(3):
                await socket.send_text("who")
                self.assertEqual((await socket.receive())["text"], "Ada/ada")
            anonymous = Socket(InterfaceApplication(), "/ws/whoami/")
            await anonymous.connect()
            await anonymous.send_text("who")
            self.assertEqual((await anonymous.receive())["text"], "None/anonymous")
