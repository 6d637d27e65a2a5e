"""
Test cases for projects that use channels.

Each test gets a channel layer of its own for every alias in CHANNEL_LAYERS,
self.client and self.async_client send their requests over the channel path,
and assertions look at what waits on a channel without taking it.
"""

import asyncio
import secrets

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase, TestCase, TransactionTestCase
from django.test.utils import override_settings

from django_fork.channels.layers import (
    DEFAULT_CHANNEL_LAYER_ALIAS,
    DEFAULT_CHANNEL_LAYERS,
    channel_layers,
)
from django_fork.test import signals  # NOQA: resets layers on setting_changed.
from django_fork.test.client import AsyncChannelClient, ChannelClient
from django_fork.test.worker import InProcessWorker, keep_test_connections

__all__ = [
    "ChannelAssertions",
    "ChannelSimpleTestCase",
    "ChannelTestCase",
    "ChannelTestMixin",
    "ChannelTransactionTestCase",
    "close_channel_layers",
    "isolated_channel_layers",
]

IN_MEMORY_BACKEND = "django_fork.channels.layers.inmemory.InMemoryChannelLayer"
REDIS_BACKEND = "django_fork.channels.layers.redis.RedisChannelLayer"

#: OPTIONS every backend accepts (BaseChannelLayer's); a test layer of another
#: backend than the configured one keeps only these.
COMMON_OPTIONS = ("expiry", "capacity", "channel_capacity", "group_expiry")

_redis_server = None


def _shared_redis_server():
    """
    Return a private redis-server for this test process, started on first
    use; it stops when the process exits. Tests keep apart by key prefix.
    """
    global _redis_server
    from django_fork.test.redis import RedisServer, require_redis

    require_redis()
    if _redis_server is None or not _redis_server.running:
        _redis_server = RedisServer().start()
    return _redis_server


def isolated_channel_layers(backend="inmemory"):
    """
    Return a CHANNEL_LAYERS setting with every configured alias (the default
    in-memory layer if CHANNEL_LAYERS is unset) on a layer of its own: a new
    in-memory layer, or, for backend "redis", a key prefix of its own on a
    private redis-server.
    """
    if backend not in ("inmemory", "redis"):
        raise ImproperlyConfigured(
            "The channel layer backend of a test must be 'inmemory' or 'redis', "
            "not %r." % (backend,)
        )
    configured = getattr(settings, "CHANNEL_LAYERS", None)
    if configured is None:
        configured = DEFAULT_CHANNEL_LAYERS
    token = secrets.token_hex(6)
    layers = {}
    for alias, config in configured.items():
        options = dict(config.get("OPTIONS", {}))
        if backend == "redis":
            if config.get("BACKEND") != REDIS_BACKEND:
                options = {k: v for k, v in options.items() if k in COMMON_OPTIONS}
            options["prefix"] = "test.%s.%s" % (token, _key_safe(alias))
            layers[alias] = {
                "BACKEND": REDIS_BACKEND,
                "LOCATION": _shared_redis_server().url,
                "OPTIONS": options,
            }
        else:
            layers[alias] = {
                "BACKEND": IN_MEMORY_BACKEND,
                "OPTIONS": {k: v for k, v in options.items() if k in COMMON_OPTIONS},
            }
    return layers


def close_channel_layers(backend="inmemory"):
    """
    Close the layers of a test (deleting its keys on a Redis layer, to leave
    the shared server as the test found it).
    """
    for layer in channel_layers.all(initialized_only=True):
        if backend == "redis":
            layer.flush_sync()
        layer.close_sync()


class ChannelAssertions:
    """
    Assertions about the messages waiting on channels, and consume(). A
    class using it provides fail(msg), as unittest.TestCase does.
    """

    #: The layer alias that assertions and consume() use unless told.
    channel_layer_alias = DEFAULT_CHANNEL_LAYER_ALIAS

    def get_channel_layer(self, layer=None):
        """Return this test's layer for the alias (channel_layer_alias)."""
        return channel_layers[layer or self.channel_layer_alias]

    def get_messages(self, channel, *, layer=None, limit=None):
        """
        Return the messages waiting on channel, oldest first, without taking
        them: a consumer still receives them. Needs a layer with the "peek"
        extension.
        """
        channel_layer = self.get_channel_layer(layer)
        channel_layer.require_extension("peek")
        return channel_layer.peek_sync(channel, limit)

    async def aget_messages(self, channel, *, layer=None, limit=None):
        """Async twin of get_messages()."""
        channel_layer = self.get_channel_layer(layer)
        channel_layer.require_extension("peek")
        return await channel_layer.peek(channel, limit)

    def watch_group(self, group, *, layer=None):
        """
        Add a new channel to group and return its name: get_messages() and
        assertMessageSent() on it show what was sent to the group from then
        on. A group is not a queue; watch it before the code under test
        sends.
        """
        channel_layer = self.get_channel_layer(layer)
        channel = channel_layer.new_channel_sync("test.watch?")
        channel_layer.group_add_sync(group, channel)
        return channel

    def assertMessageSent(self, channel, /, *, layer=None, msg_prefix="", **expected):
        """
        Assert that a message waiting on channel has every key of expected
        with its value; return the first such message. The message stays
        queued: consume() or a worker still gets it.
        """
        messages = self.get_messages(channel, layer=layer)
        for message in messages:
            if all(
                key in message and message[key] == value
                for key, value in expected.items()
            ):
                return message
        if msg_prefix:
            msg_prefix += ": "
        if not messages:
            self.fail("%sNo message is waiting on %r." % (msg_prefix, channel))
        self.fail(
            "%sNo message waiting on %r matches %r. Waiting: %s"
            % (msg_prefix, channel, expected, _describe(messages))
        )

    def assertNothingSent(self, channel, /, *, layer=None, msg_prefix=""):
        """Assert that no message waits on channel."""
        messages = self.get_messages(channel, layer=layer)
        if messages:
            if msg_prefix:
                msg_prefix += ": "
            self.fail(
                "%s%d message(s) waiting on %r: %s"
                % (msg_prefix, len(messages), channel, _describe(messages))
            )

    def consume(self, channel, *, layer=None, timeout=1, raise_exceptions=True):
        """
        Take the next message waiting on channel and run it through the
        worker's dispatch (the consumer CHANNEL_ROUTING gives the channel, or
        the worker's own for http.request), in this thread. Return the
        message. Fail if nothing arrives within timeout seconds; raise what the
        consumer raised unless raise_exceptions is False (the worker would log
        it).
        """
        return async_to_sync(self.aconsume)(
            channel, layer=layer, timeout=timeout, raise_exceptions=raise_exceptions
        )

    async def aconsume(self, channel, *, layer=None, timeout=1, raise_exceptions=True):
        """Async twin of consume()."""
        channel_layer = self.get_channel_layer(layer)
        worker = InProcessWorker(channel_layer, log_failures=not raise_exceptions)
        if channel not in worker.routes:
            self.fail(
                "No consumer is routed to %r; CHANNEL_ROUTING routes %s."
                % (channel, ", ".join(map(repr, worker.routing.channel_routes)))
            )
        if channel_layer.has_extension("peek") and not await channel_layer.peek(
            channel, 1
        ):
            self.fail("No message is waiting on %r." % channel)
        try:
            message = await asyncio.wait_for(channel_layer.receive(channel), timeout)
        except asyncio.TimeoutError:
            self.fail(
                "No message arrived on %r within %s seconds." % (channel, timeout)
            )
        with keep_test_connections():
            exc_info = await worker.run_message(channel, message)
        if exc_info is not None and raise_exceptions:
            raise exc_info[1].with_traceback(exc_info[2])
        return message


class ChannelTestMixin(ChannelAssertions):
    """
    Give each test isolated channel layers, channel-path test clients, and
    assertions about queued messages. Mix it into a Django test case class
    before the case (ChannelTestCase and friends do).
    """

    client_class = ChannelClient
    async_client_class = AsyncChannelClient

    #: The backend of every layer during a test: "inmemory" (a fresh
    #: in-memory layer per test) or "redis" (a private redis-server, with a
    #: key prefix per test).
    channel_layer_backend = "inmemory"

    @classmethod
    def setUpClass(cls):
        if cls.channel_layer_backend not in ("inmemory", "redis"):
            raise ImproperlyConfigured(
                "%s.channel_layer_backend must be 'inmemory' or 'redis', not %r."
                % (cls.__qualname__, cls.channel_layer_backend)
            )
        if cls.channel_layer_backend == "redis":
            # Skips the class when redis-server isn't installed (fails under
            # CI=true), before any class-level state needs undoing.
            _shared_redis_server()
        super().setUpClass()

    @classmethod
    def get_channel_layer_settings(cls):
        """
        Return the CHANNEL_LAYERS setting of one test: every configured alias
        (the default in-memory layer if CHANNEL_LAYERS is unset) on a layer
        of its own.
        """
        return isolated_channel_layers(cls.channel_layer_backend)

    # Django 5.2's _pre_setup() is a classmethod: TransactionTestCase runs the
    # first test's in setUpClass(). Each is followed by the test's
    # _post_teardown(), or by tearDownClass() if the test is skipped.

    @classmethod
    def _pre_setup(cls):
        cls._end_channel_layers()
        override = override_settings(CHANNEL_LAYERS=cls.get_channel_layer_settings())
        override.enable()
        cls._channel_layers_override = override
        try:
            super()._pre_setup()
        except BaseException:
            cls._end_channel_layers()
            raise

    def _post_teardown(self):
        try:
            super()._post_teardown()
        finally:
            self._end_channel_layers()

    @classmethod
    def tearDownClass(cls):
        try:
            cls._end_channel_layers()
        finally:
            super().tearDownClass()

    @classmethod
    def _end_channel_layers(cls):
        """Close the test's layers and restore CHANNEL_LAYERS."""
        override = cls.__dict__.get("_channel_layers_override")
        if override is None:
            return
        cls._channel_layers_override = None
        try:
            close_channel_layers(cls.channel_layer_backend)
        finally:
            override.disable()


def _key_safe(alias):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in alias)


def _describe(messages, limit=5):
    shown = ", ".join(repr(message) for message in messages[:limit])
    if len(messages) > limit:
        shown += ", ... (%d more)" % (len(messages) - limit)
    return "[%s]" % shown


class ChannelSimpleTestCase(ChannelTestMixin, SimpleTestCase):
    """SimpleTestCase with isolated channel layers and channel-path clients."""


class ChannelTransactionTestCase(ChannelTestMixin, TransactionTestCase):
    """TransactionTestCase with isolated channel layers and channel clients."""


class ChannelTestCase(ChannelTestMixin, TestCase):
    """TestCase with isolated channel layers and channel-path clients."""
