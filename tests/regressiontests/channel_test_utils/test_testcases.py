"""ChannelTestCase and friends: isolated layers, assertions, consume()."""

import unittest
from unittest import mock

from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import override_settings

from django_fork.channels.layers import get_channel_layer
from django_fork.channels.layers.inmemory import InMemoryChannelLayer
from django_fork.test import (
    ChannelClient,
    ChannelSimpleTestCase,
    ChannelTestCase,
    ChannelTestMixin,
    ChannelTransactionTestCase,
)

from . import consumers
from .models import Note

IN_MEMORY = "django_fork.channels.layers.inmemory.InMemoryChannelLayer"
REDIS = "django_fork.channels.layers.redis.RedisChannelLayer"

TWO_LAYERS = {
    # A project's configuration: the test replaces the backends and keeps
    # the options every backend understands.
    "default": {
        "BACKEND": REDIS,
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"capacity": 7, "prefix": "production"},
    },
    "other": {"BACKEND": IN_MEMORY, "OPTIONS": {"expiry": 5}},
}

seen_layers = []


@override_settings(CHANNEL_LAYERS=TWO_LAYERS)
class IsolationTests(ChannelSimpleTestCase):
    def test_every_alias_gets_a_fresh_in_memory_layer(self):
        for alias in ("default", "other"):
            layer = get_channel_layer(alias)
            self.assertIsInstance(layer, InMemoryChannelLayer)
            self.assertNotIn(layer, seen_layers)
            seen_layers.append(layer)
        self.assertEqual(get_channel_layer().capacity, 7)
        self.assertEqual(get_channel_layer("other").expiry, 5)

    def test_layers_are_fresh_in_every_test(self):
        self.test_every_alias_gets_a_fresh_in_memory_layer()

    def test_messages_stay_in_their_test(self):
        # Whichever of the two runs first, the other finds nothing.
        self.assertNothingSent("isolation")
        get_channel_layer().send_sync("isolation", {"type": "t"})

    def test_messages_stay_in_their_test_2(self):
        self.test_messages_stay_in_their_test()

    def test_clients(self):
        self.assertIsInstance(self.client, ChannelClient)

    def test_bad_backend(self):
        class Bad(ChannelTestMixin, unittest.TestCase):
            channel_layer_backend = "carrier-pigeon"

        with self.assertRaisesMessage(ImproperlyConfigured, "'carrier-pigeon'"):
            Bad.setUpClass()


@override_settings(
    ROOT_URLCONF="channel_test_utils.urls",
    CHANNEL_ROUTING="channel_test_utils.consumers",
)
class MessageAssertionTests(ChannelTestCase):
    def setUp(self):
        consumers.handled.clear()

    def test_assert_message_sent_consumes_nothing(self):
        """A message asserted on stays queued: consume() still runs it."""
        self.client.get("/enqueue/", {"name": "cat.jpg"})
        message = self.assertMessageSent("thumbnails", type="thumbnail", name="cat.jpg")
        self.assertEqual(message, {"type": "thumbnail", "name": "cat.jpg"})
        self.assertEqual(self.get_messages("thumbnails"), [message])
        self.assertEqual(self.consume("thumbnails"), message)
        self.assertEqual(consumers.handled, [message])
        self.assertTrue(Note.objects.filter(text="thumbnail of cat.jpg").exists())
        self.assertNothingSent("thumbnails")

    def test_assert_message_sent_failures(self):
        with self.assertRaisesMessage(
            AssertionError, "No message is waiting on 'thumbnails'."
        ):
            self.assertMessageSent("thumbnails")
        get_channel_layer().send_sync("thumbnails", {"type": "thumbnail", "n": 1})
        msg = (
            "Custom: No message waiting on 'thumbnails' matches {'n': 2}. Waiting: "
            "[{'type': 'thumbnail', 'n': 1}]"
        )
        with self.assertRaisesMessage(AssertionError, msg):
            self.assertMessageSent("thumbnails", n=2, msg_prefix="Custom")
        with self.assertRaisesMessage(AssertionError, "'other'"):
            # A missing key never matches, even against None.
            self.assertMessageSent("thumbnails", other=None)
        self.assertMessageSent("thumbnails")

    def test_assert_message_sent_channel_key(self):
        """channel is positional-only: a message key may be called channel."""
        get_channel_layer().send_sync("work", {"type": "t", "channel": "x"})
        self.assertMessageSent("work", channel="x")

    def test_assert_nothing_sent(self):
        self.assertNothingSent("thumbnails")
        layer = get_channel_layer()
        for n in range(7):
            layer.send_sync("thumbnails", {"type": "thumbnail", "n": n})
        with self.assertRaisesMessage(
            AssertionError, "7 message(s) waiting on 'thumbnails': [{'type'"
        ) as cm:
            self.assertNothingSent("thumbnails")
        self.assertIn("... (2 more)", str(cm.exception))

    def test_get_messages(self):
        layer = get_channel_layer()
        for n in range(3):
            layer.send_sync("thumbnails", {"type": "thumbnail", "n": n})
        self.assertEqual([m["n"] for m in self.get_messages("thumbnails")], [0, 1, 2])
        self.assertEqual(len(self.get_messages("thumbnails", limit=2)), 2)
        # Copies: changing one changes nothing queued.
        self.get_messages("thumbnails")[0]["n"] = 99
        self.assertEqual(self.get_messages("thumbnails")[0]["n"], 0)

    def test_watch_group(self):
        channel = self.watch_group("chat")
        get_channel_layer().group_send_sync("chat", {"type": "chat.message", "t": 1})
        self.assertMessageSent(channel, type="chat.message", t=1)

    def test_connection_stays_open(self):
        """Neither requests nor consumers close the test's connection."""
        with mock.patch.object(connection, "close") as close:
            self.client.get("/enqueue/", {"name": "cat.jpg"})
            self.consume("thumbnails")
        close.assert_not_called()
        self.assertEqual(Note.objects.count(), 1)

    def test_consume_async_consumer(self):
        get_channel_layer().send_sync("async-work", {"type": "work", "n": 1})
        self.consume("async-work")
        self.assertEqual(consumers.handled, [{"type": "work", "n": 1}])

    async def test_aconsume(self):
        await get_channel_layer().send("async-work", {"type": "work", "n": 2})
        messages = await self.aget_messages("async-work")
        self.assertEqual(messages, [{"type": "work", "n": 2}])
        await self.aconsume("async-work")
        self.assertEqual(consumers.handled, [{"type": "work", "n": 2}])

    def test_consume_raises_what_the_consumer_raised(self):
        get_channel_layer().send_sync("failing", {"type": "bad"})
        with self.assertRaisesMessage(ValueError, "consumer failed on bad"):
            self.consume("failing")
        self.assertNothingSent("failing")

    def test_consume_without_raising_logs(self):
        get_channel_layer().send_sync("failing", {"type": "bad"})
        with self.assertLogs("django_fork.channels.worker", "ERROR") as logs:
            self.consume("failing", raise_exceptions=False)
        self.assertIn("Consumer for channel 'failing' failed", logs.output[0])

    def test_consume_nothing_waiting(self):
        with self.assertRaisesMessage(
            AssertionError, "No message is waiting on 'thumbnails'."
        ):
            self.consume("thumbnails")

    def test_consume_unrouted_channel(self):
        get_channel_layer().send_sync("nobody", {"type": "t"})
        with self.assertRaisesMessage(
            AssertionError, "No consumer is routed to 'nobody'"
        ):
            self.consume("nobody")

    def test_consume_http_request(self):
        """http.request goes to the worker's own consumer."""
        from django_fork.channels.codecs import request_message
        from django_fork.test.client import http_scope

        scope = http_scope("GET", b"/json/", headers=[[b"host", b"testserver"]])
        get_channel_layer().send_sync(
            "http.request", request_message(scope, "test.reply!one")
        )
        self.consume("http.request")
        self.assertMessageSent(
            "test.reply!one", type="http.response.start", body=b'{"answer": 42}'
        )

    @override_settings(
        CHANNEL_LAYERS={
            "default": {"BACKEND": IN_MEMORY},
            "other": {"BACKEND": IN_MEMORY},
        }
    )
    def test_other_layer(self):
        get_channel_layer("other").send_sync("thumbnails", {"type": "t"})
        self.assertNothingSent("thumbnails")
        self.assertMessageSent("thumbnails", layer="other", type="t")


class NoPeekLayer(InMemoryChannelLayer):
    extensions = ["groups", "flush", "stats"]


NO_PEEK = {"default": {"BACKEND": "channel_test_utils.test_testcases.NoPeekLayer"}}


class PeekRequiredTests(ChannelSimpleTestCase):
    @override_settings(CHANNEL_LAYERS=NO_PEEK)
    def test_peek_needs_the_extension(self):
        """A test method's own CHANNEL_LAYERS are used as they are."""
        self.assertIsInstance(get_channel_layer(), NoPeekLayer)
        with self.assertRaisesMessage(NotImplementedError, "'peek'"):
            self.assertNothingSent("anything")


@override_settings(
    ROOT_URLCONF="channel_test_utils.urls",
    CHANNEL_ROUTING="channel_test_utils.consumers",
)
class TransactionFlavourTests(ChannelTransactionTestCase):
    def test_client_and_consume(self):
        response = self.client.post("/notes/", {"text": "committed"})
        self.assertFalse(response.json()["in_atomic_block"])
        self.client.get("/enqueue/", {"name": "dog.jpg"})
        self.assertMessageSent("thumbnails", name="dog.jpg")
        self.consume("thumbnails")
        self.assertEqual(
            sorted(Note.objects.values_list("text", flat=True)),
            ["committed", "thumbnail of dog.jpg"],
        )

    def test_layers_are_isolated(self):
        self.assertNothingSent("thumbnails")


# ChannelSimpleTestCase's Redis flavour calls require_redis(): it skips without
# redis-server, except under CI=true, where that is a failure.
@override_settings(
    ROOT_URLCONF="channel_test_utils.urls",
    CHANNEL_ROUTING="channel_test_utils.consumers",
    CHANNEL_LAYERS=TWO_LAYERS,
)
class RedisFlavourTests(ChannelSimpleTestCase):
    channel_layer_backend = "redis"
    prefixes = []

    def test_layers_on_a_private_redis_with_a_prefix_per_test(self):
        from django_fork.channels.layers.redis import RedisChannelLayer

        layer = get_channel_layer()
        self.assertIsInstance(layer, RedisChannelLayer)
        self.assertEqual(layer.capacity, 7)
        self.assertNotIn("6379", layer.location)
        self.assertNotEqual(layer.prefix, get_channel_layer("other").prefix)
        self.assertNotIn(layer.prefix, self.prefixes)
        self.prefixes.append(layer.prefix)

    def test_prefix_per_test(self):
        self.test_layers_on_a_private_redis_with_a_prefix_per_test()

    def test_client_over_redis(self):
        response = self.client.get("/describe/", {"a": "1"})
        self.assertEqual(response.json()["query"], {"a": "1"})
        response = self.client.get("/stream/")
        self.assertEqual(b"".join(response.streaming_content), b"part 0;part 1;part 2;")

    def test_assertions_over_redis(self):
        layer = get_channel_layer()
        if not layer.has_extension("peek"):
            self.skipTest("The Redis layer has no 'peek' extension yet.")
        layer.send_sync("async-work", {"type": "work", "n": 1})
        self.assertMessageSent("async-work", n=1)
        consumers.handled.clear()
        self.consume("async-work")
        self.assertEqual(consumers.handled, [{"type": "work", "n": 1}])
        self.assertNothingSent("async-work")
