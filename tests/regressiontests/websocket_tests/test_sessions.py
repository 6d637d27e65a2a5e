"""Channel-aware sessions for WebSocket consumers."""

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.contrib.sessions.exceptions import SessionInterrupted
from django.core.cache import caches
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
    ChannelSessionLost,
    MessageSessions,
    channel_session_key,
    get_session_store_class,
    load_channel_session,
    save_session,
)

from . import consumers
from .tests import Socket, layers, running_worker

CACHE_SESSIONS = "django.contrib.sessions.backends.cache"
REPLY_CHANNEL = "websocket.send.abc!def"


def small_cache(location, max_entries=300):
    """A local-memory cache of its own for the sessions, of max_entries."""
    return {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sessions": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": location,
            "OPTIONS": {"MAX_ENTRIES": max_entries},
        },
    }


def event(event_type, reply_channel=REPLY_CHANNEL, **values):
    return {"type": event_type, "reply_channel": reply_channel, "path": "/", **values}


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


async def wait_until(predicate, timeout=5):
    for _ in range(int(timeout / 0.01)):
        if await sync_to_async(predicate)():
            return True
        await asyncio.sleep(0.01)
    return False


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

    async def test_refused_handshake_deletes_channel_session(self):
        """A handshake refused in connect() leaves no channel session."""
        consumers.count_channels.clear()
        store = get_session_store_class()()
        async with two_workers():
            socket = Socket(InterfaceApplication(), "/ws/refuse-session/")
            self.assertEqual((await socket.connect())["type"], "websocket.close")
            key = channel_session_key(consumers.count_channels[0])
            self.assertTrue(await wait_until(lambda: not store.exists(key)))

    def test_key_is_unguessable(self):
        """The key is an HMAC of the reply channel under SECRET_KEY."""
        key = channel_session_key(REPLY_CHANNEL)
        self.assertRegex(key, r"^[0-9a-f]{40}$")
        self.assertNotIn("def", key)
        with self.settings(SECRET_KEY="another secret"):
            self.assertNotEqual(channel_session_key(REPLY_CHANNEL), key)
        self.assertNotEqual(channel_session_key("websocket.send.abc!deg"), key)

    @override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies")
    def test_signed_cookie_sessions_refused(self):
        with self.assertRaisesMessage(ImproperlyConfigured, "server-side"):
            load_channel_session(event("websocket.connect"))


@override_settings(
    SESSION_ENGINE=CACHE_SESSIONS,
    SESSION_CACHE_ALIAS="sessions",
    CACHES=small_cache("save-session"),
)
class SaveSessionTests(SimpleTestCase):
    """save_session() is SessionMiddleware's rule for the end of a response."""

    def setUp(self):
        caches["sessions"].clear()
        self.store_class = get_session_store_class()
        self.session = self.store_class()
        self.session["name"] = "Ada"
        self.session.save()

    def reload(self):
        return self.store_class(self.session.session_key)

    def test_modified_session_is_saved(self):
        session = self.reload()
        session["name"] = "Grace"
        self.assertIs(save_session(session), True)
        self.assertEqual(self.reload()["name"], "Grace")

    def test_unmodified_session_is_not_saved(self):
        session = self.reload()
        self.assertEqual(session["name"], "Ada")
        other = self.reload()
        other["name"] = "Grace"
        other.save()
        self.assertIs(save_session(session), False)
        self.assertEqual(self.reload()["name"], "Grace")

    @override_settings(SESSION_SAVE_EVERY_REQUEST=True)
    def test_save_every_request(self):
        session = self.reload()
        self.assertEqual(session["name"], "Ada")
        self.assertIs(save_session(session), True)

    def test_empty_session_is_not_saved(self):
        session = self.store_class()
        session["name"] = "Ada"
        del session["name"]
        self.assertIs(save_session(session), False)
        self.assertIsNone(session.session_key)

    def test_session_deleted_meanwhile(self):
        session = self.reload()
        session["name"] = "Grace"
        self.reload().delete()
        with self.assertRaises(SessionInterrupted):
            save_session(session)


@override_settings(
    SESSION_ENGINE=CACHE_SESSIONS,
    SESSION_CACHE_ALIAS="sessions",
    CACHES=small_cache("message-sessions"),
)
class MessageSessionsTests(SimpleTestCase):
    """The life of a channel session, one event at a time."""

    def setUp(self):
        caches["sessions"].clear()

    def connect(self):
        sessions = MessageSessions(event("websocket.connect"), channel=True)
        sessions.channel_session["room"] = "lobby"
        sessions.accept()
        sessions.save()
        return sessions

    def test_frames_find_the_session_of_connect(self):
        self.connect()
        frame = MessageSessions(event("websocket.receive"), channel=True)
        self.assertEqual(frame.channel_session["room"], "lobby")
        self.assertEqual(
            frame.channel_session.session_key, channel_session_key(REPLY_CHANNEL)
        )

    def test_lost_session_is_not_replaced_by_an_empty_one(self):
        self.connect()
        caches["sessions"].clear()
        msg = "The channel session of %s was lost" % REPLY_CHANNEL
        with self.assertRaisesMessage(ChannelSessionLost, msg):
            MessageSessions(event("websocket.receive"), channel=True)
        # ChannelSessionLost is a SessionInterrupted (a 400 on HTTP).
        self.assertTrue(issubclass(ChannelSessionLost, SessionInterrupted))

    def test_session_deleted_during_a_frame(self):
        self.connect()
        frame = MessageSessions(event("websocket.receive"), channel=True)
        frame.channel_session["room"] = "kitchen"
        caches["sessions"].clear()
        with self.assertRaises(ChannelSessionLost):
            frame.save()

    def test_disconnect_of_a_lost_session(self):
        """The disconnect of a socket that lost its session raises nothing."""
        self.connect()
        caches["sessions"].clear()
        sessions = MessageSessions(event("websocket.disconnect"), channel=True)
        self.assertIsNone(sessions.channel_session.get("room"))
        sessions.save()

    def test_failed_consumer_saves_nothing(self):
        """Only save() saves; a consumer that raises never reaches it."""
        self.connect()
        frame = MessageSessions(event("websocket.receive"), channel=True)
        frame.channel_session["room"] = "kitchen"
        again = MessageSessions(event("websocket.receive"), channel=True)
        self.assertEqual(again.channel_session["room"], "lobby")

    @override_settings(SESSION_SAVE_EVERY_REQUEST=True)
    def test_connect_does_not_overwrite_the_first_frame(self):
        """
        After accept(), the connect event saves only what it modifies: the
        first frame, on another worker, may have saved meanwhile.
        """
        connect = MessageSessions(event("websocket.connect"), channel=True)
        connect.channel_session["room"] = "lobby"
        connect.accept()
        frame = MessageSessions(event("websocket.receive"), channel=True)
        frame.channel_session["room"] = "kitchen"
        frame.save()
        connect.save()
        again = MessageSessions(event("websocket.receive"), channel=True)
        self.assertEqual(again.channel_session["room"], "kitchen")

    def test_no_new_http_session(self):
        """A stale cookie's session is not recreated under a new key."""
        headers = [(b"cookie", b"sessionid=stalestalestale")]
        sessions = MessageSessions(
            event("websocket.connect", headers=headers), channel=True, http=True
        )
        sessions.http_session["name"] = "Ada"
        sessions.accept()
        sessions.save()
        # Only the channel session is in the store.
        self.assertEqual(len(caches["sessions"]._cache), 1)

    def test_cleared_session_stays_the_sockets(self):
        self.connect()
        frame = MessageSessions(event("websocket.receive"), channel=True)
        frame.channel_session.clear()
        frame.save()
        again = MessageSessions(event("websocket.receive"), channel=True)
        self.assertNotIn("room", again.channel_session)

    def test_reconnect_on_the_same_reply_channel_starts_afresh(self):
        self.connect()
        sessions = MessageSessions(event("websocket.connect"), channel=True)
        self.assertNotIn("room", sessions.channel_session)


@override_settings(
    CHANNEL_LAYERS=layers(capacity=5000),
    SESSION_ENGINE=CACHE_SESSIONS,
    SESSION_CACHE_ALIAS="sessions",
    CACHES=small_cache("eviction", max_entries=6),
    CHANNEL_WEBSOCKET_ACK_TIMEOUT=2,
    ROOT_URLCONF="websocket_tests.urls",
)
class EvictionTests(SimpleTestCase):
    """
    A channel session evicted under its live socket closes the socket (1011)
    with a logged reason, rather than failing in the consumer on each frame.
    """

    sockets = 15

    async def open_sockets(self, path):
        app = InterfaceApplication()
        sockets = [Socket(app, path) for _ in range(self.sockets)]
        for socket in sockets:
            self.assertEqual((await socket.connect())["type"], "websocket.accept")
        return sockets

    async def check_sockets(self, path):
        await sync_to_async(caches["sessions"].clear)()
        with self.assertLogs("django_fork.channels", logging.WARNING) as logs:
            async with two_workers():
                sockets = await self.open_sockets(path)
                answers = []
                for socket in sockets:
                    await socket.send_text("x")
                    answers.append(await socket.receive())
                # A server-closed socket's relay waits for the acknowledgement
                # of its last frame, which comes after the close, until the
                # ack timeout: disconnect them all at once.
                await asyncio.gather(*(socket.disconnect() for socket in sockets))
        closed = [a for a in answers if a == {"type": "websocket.close", "code": 1011}]
        counted = [a for a in answers if a == {"type": "websocket.send", "text": "1"}]
        # MAX_ENTRIES 6: the cache evicted the sessions of the first sockets.
        self.assertGreater(len(closed), 0)
        self.assertGreater(len(counted), 0)
        self.assertEqual(len(closed) + len(counted), self.sockets)
        lost = [
            r for r in logs.records if "was lost from the session" in r.msg % r.args
        ]
        self.assertEqual(len(lost), len(closed))
        self.assertEqual([r for r in logs.records if r.levelno >= logging.ERROR], [])

    async def test_sync_consumer(self):
        await self.check_sockets("/ws/count/")

    async def test_async_consumer(self):
        await self.check_sockets("/ws/async-count/")


@override_settings(
    CHANNEL_LAYERS=layers(capacity=5000),
    SESSION_ENGINE="django.contrib.sessions.backends.cached_db",
    SESSION_CACHE_ALIAS="sessions",
    CACHES=small_cache("cached-db", max_entries=6),
    ROOT_URLCONF="websocket_tests.urls",
)
class NonEvictingStoreTests(TransactionTestCase):
    """With cached_db, the same small cache loses no channel session."""

    available_apps = ["django.contrib.sessions", "websocket_tests"]

    async def test_every_socket_keeps_its_session(self):
        # One thread: SQLite's shared in-memory test database locks tables.
        async with running_worker(threads=1):
            app = InterfaceApplication()
            sockets = [Socket(app, "/ws/count/") for _ in range(15)]
            for socket in sockets:
                await socket.connect()
            for n in ("1", "2"):
                for socket in sockets:
                    await socket.send_text("x")
                    self.assertEqual(
                        await socket.receive(), {"type": "websocket.send", "text": n}
                    )
            for socket in sockets:
                await socket.disconnect()


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

    def socket(self, path, client):
        cookie = client.cookies["sessionid"].value
        return Socket(
            InterfaceApplication(),
            path,
            headers=[(b"cookie", b"sessionid=" + cookie.encode())],
        )

    async def test_http_session_and_user(self):
        """A consumer sees the session a normal view set, and its user."""
        client = Client()
        user = await sync_to_async(User.objects.create_user)("ada", password="pw")
        await sync_to_async(client.force_login)(user)
        await sync_to_async(client.get)("/remember/", {"name": "Ada"})
        async with two_workers():
            socket = self.socket("/ws/whoami/", client)
            await socket.connect()
            # Frames carry no cookie: the session key was kept at connect.
            for _ in range(3):
                await socket.send_text("who")
                self.assertEqual((await socket.receive())["text"], "Ada/ada")
            anonymous = Socket(InterfaceApplication(), "/ws/whoami/")
            await anonymous.connect()
            await anonymous.send_text("who")
            self.assertEqual((await anonymous.receive())["text"], "None/anonymous")

    async def test_consumer_changes_are_saved(self):
        """
        What a consumer stores in the HTTP session is saved at the end of the
        event, as a view's at the end of the response; not when it failed.
        """
        client = Client()
        await sync_to_async(client.get)("/remember/", {"name": "Ada"})
        async with two_workers():
            socket = self.socket("/ws/rename/", client)
            await socket.connect()
            await socket.send_text("Grace")
            self.assertEqual((await socket.receive())["text"], "renamed")
            # Saved after the consumer's send, but before the next frame.
            await socket.send_text("peek")
            self.assertEqual((await socket.receive())["text"], "Grace")
            response = await sync_to_async(client.get)("/recall/")
            self.assertEqual(response.content, b"Grace/None")
            with self.assertLogs("django_fork.channels", logging.ERROR):
                await socket.send_text("fail:Bob")
                await socket.send_text("peek")
                self.assertEqual((await socket.receive())["text"], "Grace")
            response = await sync_to_async(client.get)("/recall/")
            self.assertEqual(response.content, b"Grace/None")
            await socket.disconnect()

    async def test_http_session_alone_saved_at_accept(self):
        """Without a channel session, the HTTP session is saved by accept()."""
        client = Client()
        await sync_to_async(client.get)("/remember/", {"name": "Ada"})
        async with two_workers():
            socket = self.socket("/ws/http-only/", client)
            self.assertEqual((await socket.connect())["type"], "websocket.accept")
            response = await sync_to_async(client.get)("/recall/")
            self.assertEqual(response.content, b"Ada/True")
            await socket.disconnect()
