import asyncio
import os
import threading
from unittest import skipUnless

from django.test import SimpleTestCase, override_settings

from django_fork.channels.exceptions import InvalidChannelLayerError
from django_fork.channels.layers import (
    channel_layers,
    get_channel_layer,
)
from django_fork.channels.layers.inmemory import InMemoryChannelLayer
from django_fork.channels.names import random_suffix

from .contract import ChannelLayerContractTests


class InMemoryChannelLayerTests(ChannelLayerContractTests, SimpleTestCase):
    def make_layer(self, **options):
        return InMemoryChannelLayer(**options)

    def test_store_is_bounded(self):
        """Past max_stored values, the oldest written goes first."""
        layer = self.layer(max_stored=3)
        for n in range(5):
            layer.store_set_sync("key.%d" % n, {"n": n}, 60)
        self.assertEqual(
            [layer.store_get_sync("key.%d" % n) for n in range(5)],
            [None, None, {"n": 2}, {"n": 3}, {"n": 4}],
        )

    def test_threads_and_event_loops(self):
        """Sync senders in threads wake a receiver waiting in an event loop."""
        layer = self.layer(capacity=10000)
        received = []

        async def consume():
            for _ in range(2000):
                received.append((await layer.receive("crossing"))["n"])

        def produce(start):
            for i in range(start, start + 500):
                layer.send_sync("crossing", {"type": "t", "n": i})

        threads = [threading.Thread(target=produce, args=(i * 500,)) for i in range(4)]
        for thread in threads:
            thread.start()
        asyncio.run(asyncio.wait_for(consume(), 10))
        for thread in threads:
            thread.join()
        self.assertEqual(sorted(received), list(range(2000)))

    def test_receive_sync_timeout(self):
        layer = self.layer()
        with self.assertRaises(TimeoutError):
            layer.receive_any_sync(["nothing"], timeout=0.01)
        layer.send_sync("nothing", {"type": "t"})
        self.assertEqual(layer.receive_any_sync(["nothing"], timeout=1)[0], "nothing")


class ChannelLayersSettingTests(SimpleTestCase):
    def test_default_is_in_memory(self):
        """With CHANNEL_LAYERS unset, the default layer is in-memory."""
        self.assertIsInstance(get_channel_layer(), InMemoryChannelLayer)

    def test_same_layer_in_every_thread(self):
        layers = []
        thread = threading.Thread(target=lambda: layers.append(get_channel_layer()))
        thread.start()
        thread.join()
        self.assertIs(layers[0], get_channel_layer())

    @override_settings(
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": (
                    "django_fork.channels.layers.inmemory.InMemoryChannelLayer"
                ),
                "OPTIONS": {"capacity": 7, "expiry": 5},
            },
            "tasks": {
                "BACKEND": (
                    "django_fork.channels.layers.inmemory.InMemoryChannelLayer"
                ),
                "LOCATION": "tasks",
            },
        }
    )
    def test_options_and_aliases(self):
        layer = channel_layers["default"]
        self.assertEqual((layer.capacity, layer.expiry), (7, 5))
        self.assertEqual(layer.alias, "default")
        self.assertEqual(channel_layers["tasks"].location, "tasks")
        self.assertIsNot(channel_layers["tasks"], layer)

    def test_reset_on_setting_changed(self):
        """Changing CHANNEL_LAYERS in a test gives fresh layers."""
        before = get_channel_layer()
        config = {
            "default": {
                "BACKEND": "django_fork.channels.layers.inmemory.InMemoryChannelLayer",
                "OPTIONS": {"capacity": 3},
            }
        }
        with self.settings(CHANNEL_LAYERS=config):
            self.assertEqual(get_channel_layer().capacity, 3)
        self.assertIsNot(get_channel_layer(), before)
        self.assertEqual(get_channel_layer().capacity, 100)

    def test_unknown_alias(self):
        with self.assertRaisesMessage(InvalidChannelLayerError, "'missing'"):
            get_channel_layer("missing")

    @override_settings(CHANNEL_LAYERS={"other": {"BACKEND": "x.Y"}})
    def test_default_alias_required(self):
        with self.assertRaisesMessage(
            InvalidChannelLayerError, "You must define a 'default' channel layer."
        ):
            get_channel_layer()

    @override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "no.such.Backend"}})
    def test_bad_backend(self):
        with self.assertRaisesMessage(InvalidChannelLayerError, "no.such.Backend"):
            get_channel_layer()

    @override_settings(CHANNEL_LAYERS={"default": {"LOCATION": "x"}})
    def test_backend_required(self):
        with self.assertRaisesMessage(InvalidChannelLayerError, "has no BACKEND"):
            get_channel_layer()


class ChannelNameTests(SimpleTestCase):
    def test_suffixes_are_unique_and_url_safe(self):
        suffixes = {random_suffix() for _ in range(1000)}
        self.assertEqual(len(suffixes), 1000)
        for suffix in suffixes:
            self.assertRegex(suffix, r"\A[A-Za-z0-9_-]{22}\Z")

    @skipUnless(hasattr(os, "fork"), "fork() is needed.")
    def test_forked_child_takes_no_suffix_of_its_parent(self):
        """The pool of random bytes is not shared with a forked child."""
        random_suffix()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            os.write(write, random_suffix().encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            child = pipe.read()
        os.waitpid(pid, 0)
        self.assertNotEqual(child, random_suffix())
        self.assertEqual(len(child), 22)
