"""
Impolite clients: they leave early, read slowly or not at all, send more
than allowed, at small sizes.
"""

import asyncio
import hashlib
import logging
import time

from asgiref.testing import ApplicationCommunicator
from django.test import SimpleTestCase, override_settings

from django_fork.channels.interface import InterfaceApplication
from django_fork.channels.layers import get_channel_layer
from django_fork.channels.layers.inmemory import InMemoryChannelLayer

from . import views
from .harness import http_scope, read_response, request, running_worker, send_body
from .test_interface_worker import layers


async def wait_for_event(event, timeout=2):
    """Return the seconds until views.events holds event (at most timeout)."""
    started = time.monotonic()
    while event not in views.events:
        if time.monotonic() - started > timeout:
            raise AssertionError("%r did not happen in %s s" % (event, timeout))
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def sized_body(size):
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


class SlowReader:
    """
    An ASGI app wrapper whose client reads slowly: seconds per 64 KiB of
    body handed to the server.
    """

    def __init__(self, app, seconds):
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope, receive, send):
        async def slow_send(message):
            if message["type"] == "http.response.body" and message.get("body"):
                await asyncio.sleep(self.seconds * len(message["body"]) / 65536)
            await send(message)

        await self.app(scope, receive, slow_send)


@override_settings(ROOT_URLCONF="channel_path_tests.urls", CHANNEL_LAYERS=layers())
class ClientLeavingTests(SimpleTestCase):
    async def test_leaving_before_the_first_byte_frees_the_worker(self):
        """
        A client that leaves before its streamed response started frees its
        worker as soon as the view's first part is produced, not after the
        acknowledgement timeout.
        """
        views.events.clear()
        layer = get_channel_layer()
        app = InterfaceApplication()
        async with running_worker(layer, threads=1):
            communicator = ApplicationCommunicator(
                app, http_scope(path="/late-stream/", query_string=b"think=0.2")
            )
            await send_body(communicator, b"")
            await asyncio.sleep(0.05)
            await communicator.send_input({"type": "http.disconnect"})
            await communicator.wait(2)
            await wait_for_event("late stream closed", timeout=3)
            status, _, _ = await request(app, path="/hello/", timeout=2)
            self.assertEqual(status, 200)
        # What the worker had sent was taken off the layer.
        stats = await layer.stats(["http.response.body?"])
        self.assertEqual(stats["http.response.body?"]["depth"], 0)

    async def test_leaving_mid_stream_frees_the_worker_and_the_layer(self):
        """An aborted download leaves nothing of itself on the layer."""
        views.events.clear()
        layer = get_channel_layer()
        app = InterfaceApplication()
        async with running_worker(layer, threads=1):
            communicator = ApplicationCommunicator(
                app, http_scope(path="/late-stream/", query_string=b"think=0")
            )
            await send_body(communicator, b"")
            self.assertEqual((await communicator.receive_output(2))["status"], 200)
            await communicator.receive_output(2)
            await communicator.send_input({"type": "http.disconnect"})
            await communicator.wait(2)
            self.assertLess(await wait_for_event("late stream closed"), 1)
            for _ in range(100):
                stats = await layer.stats(["http.response.body?"])
                if stats["http.response.body?"]["depth"] == 0:
                    break
                await asyncio.sleep(0.01)
            self.assertEqual(stats["http.response.body?"]["depth"], 0)
            self.assertEqual(app._abandoned, set())


@override_settings(ROOT_URLCONF="channel_path_tests.urls", CHANNEL_LAYERS=layers())
class StreamErrorTests(SimpleTestCase):
    async def assert_response_ends(self, after):
        layer = get_channel_layer()
        app = InterfaceApplication()
        with self.assertLogs("django_fork.channels", logging.WARNING):
            async with running_worker(layer):
                communicator = ApplicationCommunicator(
                    app,
                    http_scope(path="/stream-boom/", query_string=b"after=%d" % after),
                )
                await send_body(communicator, b"")
                self.assertEqual((await communicator.receive_output(2))["status"], 200)
                started = time.monotonic()
                # The application returns with the body incomplete: the
                # server closes the connection, as for a failing ASGI app.
                await communicator.wait(2)
                self.assertLess(time.monotonic() - started, 2)
        messages = []
        while not communicator.output_queue.empty():
            messages.append(communicator.output_queue.get_nowait())
        self.assertTrue(all(m.get("more_body") for m in messages), messages)

    async def test_raise_before_the_first_part(self):
        """A streaming view that raises at once ends the response at once."""
        await self.assert_response_ends(after=0)

    async def test_raise_mid_stream(self):
        """A streaming view that raises mid-stream ends the response."""
        await self.assert_response_ends(after=3)


@override_settings(ROOT_URLCONF="channel_path_tests.urls", CHANNEL_LAYERS=layers())
class SlowReaderTests(SimpleTestCase):
    # More chunks than the worker's window: it must wait for acknowledgements.
    size = 2 * 1024 * 1024 + 7

    async def test_slow_live_reader_gets_the_whole_body(self):
        """
        A client slower per chunk than the worker's acknowledgement timeout
        still gets the whole body: the interface reports its progress.
        """
        app = InterfaceApplication()
        app.progress_interval = 0.05
        layer = get_channel_layer()
        async with running_worker(layer, stream_timeout=0.3):
            # 256 KiB chunks at 0.1 s per 64 KiB: 0.4 s per chunk.
            status, _, body = await request(
                SlowReader(app, 0.1),
                path="/sized/",
                query_string=b"size=%d" % self.size,
                timeout=10,
            )
        self.assertEqual(status, 200)
        self.assertEqual(
            hashlib.sha256(body).hexdigest(),
            hashlib.sha256(sized_body(self.size)).hexdigest(),
        )

    async def test_reader_that_takes_nothing_is_dropped(self):
        """A client that stops reading ends its response after the timeout."""
        app = InterfaceApplication(timeout=0.3)
        layer = get_channel_layer()
        async with running_worker(layer, threads=1, stream_timeout=1):
            communicator = ApplicationCommunicator(
                SlowReader(app, 3600),
                http_scope(path="/sized/", query_string=b"size=%d" % self.size),
            )
            await send_body(communicator, b"")
            self.assertEqual((await communicator.receive_output(2))["status"], 200)
            # The application ends by itself (the server then closes the
            # connection).
            await communicator.wait(3)
            self.assertFalse(communicator.future.cancelled())
            # The worker is free for the next request.
            status, _, _ = await request(app, path="/hello/", timeout=3)
        self.assertEqual(status, 200)


@override_settings(ROOT_URLCONF="channel_path_tests.urls", CHANNEL_LAYERS=layers())
class RequestLimitTests(SimpleTestCase):
    async def test_declared_length_over_the_limit_is_413_at_once(self):
        """A Content-Length over the limit is answered before any body."""
        communicator = ApplicationCommunicator(
            InterfaceApplication(max_request_body_size=1000),
            http_scope(
                method="POST", path="/upload/", headers=[(b"content-length", b"1001")]
            ),
        )
        # No body is sent at all.
        status, _, body = await read_response(communicator, timeout=2)
        self.assertEqual(status, 413)
        self.assertIn(b"1000 bytes", body)
        await communicator.wait(2)

    def test_default_limit(self):
        """The body limit has a default: 100 MiB."""
        self.assertEqual(InterfaceApplication().max_request_body_size, 100 * 2**20)

    @override_settings(CHANNEL_MAX_REQUEST_BODY_SIZE=None)
    def test_no_limit(self):
        self.assertIsNone(InterfaceApplication().max_request_body_size)

    async def test_slow_upload_holds_no_worker(self):
        """
        An upload that trickles in is taken in by the interface: the only
        worker thread serves other requests meanwhile.
        """
        layer = get_channel_layer()
        app = InterfaceApplication(chunk_size=1024)
        async with running_worker(layer, threads=1):
            upload = ApplicationCommunicator(
                app, http_scope(method="POST", path="/body-length/")
            )
            for _ in range(5):
                await upload.send_input(
                    {"type": "http.request", "body": b"x" * 1000, "more_body": True}
                )
                status, _, _ = await request(app, path="/hello/", timeout=2)
                self.assertEqual(status, 200)
                await asyncio.sleep(0.05)
            await upload.send_input({"type": "http.request", "body": b"x"})
            status, _, body = await read_response(upload)
            await upload.wait(2)
        self.assertEqual((status, body), (200, b'{"length": 5001}'))


class ExpiryTests(SimpleTestCase):
    async def test_expired_messages_are_freed_without_traffic(self):
        """
        The in-memory layer frees what nobody received once it expires,
        though nothing else is sent: an abandoned reply pins no memory.
        """
        layer = InMemoryChannelLayer(expiry=0.5)
        channel = await layer.new_channel("http.response.body?")
        await layer.send(channel, {"type": "t", "body": b"x" * 65536})
        self.assertIn(channel, layer._queues)
        for _ in range(40):
            if not layer._queues:
                break
            await asyncio.sleep(0.1)
        self.assertEqual(layer._queues, {})


@override_settings(ROOT_URLCONF="channel_path_tests.urls", CHANNEL_LAYERS=layers())
class BodyEdgeTests(SimpleTestCase):
    async def test_bodies_at_chunk_boundaries(self):
        """Bodies of whole chunks, their last part empty, arrive whole."""
        layer = get_channel_layer()
        app = InterfaceApplication(chunk_size=1024)
        async with running_worker(layer):
            for size in (1024, 2048, 3072):
                communicator = ApplicationCommunicator(
                    app, http_scope(method="POST", path="/body-length/")
                )
                await communicator.send_input(
                    {"type": "http.request", "body": b"x" * size, "more_body": True}
                )
                await communicator.send_input({"type": "http.request", "body": b""})
                status, _, body = await read_response(communicator)
                await communicator.wait(2)
                self.assertEqual((status, body), (200, b'{"length": %d}' % size))
