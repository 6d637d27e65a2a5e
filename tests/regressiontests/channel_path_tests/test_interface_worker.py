"""The channel path end to end, in one event loop: interface, layer, worker."""

import asyncio
import json
import logging

from asgiref.testing import ApplicationCommunicator
from django.core.signals import request_finished
from django.test import SimpleTestCase, override_settings

from django_fork.channels.exceptions import ChannelLayerUnavailable
from django_fork.channels.interface import InterfaceApplication
from django_fork.channels.layers import get_channel_layer
from django_fork.channels.layers.inmemory import InMemoryChannelLayer

from . import views
from .harness import http_scope, read_response, request, running_worker, send_body

IN_MEMORY = "django_fork.channels.layers.inmemory.InMemoryChannelLayer"


def layers(**options):
    return {"default": {"BACKEND": IN_MEMORY, "OPTIONS": options}}


class UnavailableLayer(InMemoryChannelLayer):
    """An in-memory layer whose store is down, as a Redis layer's can be."""

    async def send(self, channel, message):
        raise ChannelLayerUnavailable("Connection refused")


@override_settings(ROOT_URLCONF="channel_path_tests.urls", CHANNEL_LAYERS=layers())
class ChannelPathTests(SimpleTestCase):
    async def test_get(self):
        async with running_worker(get_channel_layer()):
            status, headers, body = await request(
                InterfaceApplication(), path="/hello/", query_string=b"name=Ada"
            )
        self.assertEqual((status, body), (200, b"Hello, Ada!"))
        self.assertIn([b"Content-Type", b"text/html; charset=utf-8"], headers)

    async def test_sync_view_runs_in_worker_thread(self):
        """Sync views take the synchronous handler path, in a worker thread."""
        async with running_worker(get_channel_layer()):
            status, _, body = await request(InterfaceApplication(), path="/describe/")
        data = json.loads(body)
        self.assertEqual(status, 200)
        self.assertFalse(data["in_event_loop"])
        self.assertTrue(data["thread"].startswith("django-fork-worker"))
        self.assertEqual(data["request_class"], "ChannelRequest")

    async def test_async_view(self):
        async with running_worker(get_channel_layer()):
            status, _, body = await request(InterfaceApplication(), path="/async/")
        self.assertEqual((status, body), (200, b"async ok"))

    async def test_root_path(self):
        async with running_worker(get_channel_layer()):
            _, _, body = await request(
                InterfaceApplication(), path="/app/describe/", root_path="/app"
            )
        data = json.loads(body)
        self.assertEqual(data["path"], "/app/describe/")
        self.assertEqual(data["path_info"], "/describe/")
        self.assertEqual(data["script_name"], "/app")

    @override_settings(FORCE_SCRIPT_NAME="/forced")
    async def test_force_script_name(self):
        async with running_worker(get_channel_layer()):
            _, _, body = await request(InterfaceApplication(), path="/describe/")
        data = json.loads(body)
        self.assertEqual(data["path"], "/forced/describe/")
        self.assertEqual(data["path_info"], "/describe/")

    async def test_large_upload_travels_in_chunks(self):
        """A body above the chunk size reaches the view whole, via chunks."""
        layer = get_channel_layer()
        body = bytes(range(256)) * 4000
        async with running_worker(layer):
            status, _, response = await request(
                InterfaceApplication(chunk_size=16 * 1024),
                method="POST",
                path="/body-length/",
                body=body,
                headers=[(b"content-length", str(len(body)).encode())],
            )
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(response), {"length": len(body)})

    async def post_form_in_chunks(self, body):
        """POST a form body in 1 KiB chunks to the upload view; its JSON."""
        async with running_worker(get_channel_layer()):
            _, _, response = await request(
                InterfaceApplication(chunk_size=1024),
                method="POST",
                path="/upload/",
                body=body,
                headers=[
                    (b"content-type", b"application/x-www-form-urlencoded"),
                    (b"content-length", str(len(body)).encode()),
                ],
            )
        return json.loads(response)

    @override_settings(FILE_UPLOAD_MAX_MEMORY_SIZE=10000)
    async def test_chunked_body_in_memory(self):
        """A chunked body under FILE_UPLOAD_MAX_MEMORY_SIZE stays in memory."""
        data = await self.post_form_in_chunks(b"a=" + b"x" * 5000)
        self.assertIs(data["on_disk"], False)
        self.assertEqual(data["post"]["a"], ["x" * 5000])

    @override_settings(FILE_UPLOAD_MAX_MEMORY_SIZE=1000)
    async def test_body_spooled_to_disk(self):
        """A body above FILE_UPLOAD_MAX_MEMORY_SIZE is spooled to disk."""
        data = await self.post_form_in_chunks(b"a=" + b"x" * 5000)
        self.assertIs(data["on_disk"], True)
        self.assertEqual(len(data["post"]["a"][0]), 5000)

    @override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100)
    async def test_data_upload_max_memory_size(self):
        """Django's own limit applies: RequestDataTooBig answers 400."""
        body = b"x" * 1000
        async with running_worker(get_channel_layer()):
            status, _, _ = await request(
                InterfaceApplication(),
                method="POST",
                path="/body-length/",
                body=body,
                headers=[(b"content-length", b"1000")],
            )
        self.assertEqual(status, 400)

    async def test_max_request_body_size(self):
        """A body over the interface's maximum is refused with 413."""
        layer = get_channel_layer()
        async with running_worker(layer):
            status, _, body = await request(
                InterfaceApplication(chunk_size=1024, max_request_body_size=4096),
                method="POST",
                path="/body-length/",
                body=b"x" * 10000,
            )
        self.assertEqual(status, 413)
        self.assertIn(b"larger than 4096 bytes", body)

    async def test_large_response_travels_in_chunks(self):
        async with running_worker(get_channel_layer()):
            status, _, body = await request(
                InterfaceApplication(),
                path="/stream/",
                query_string=b"parts=4&size=300000",
            )
        self.assertEqual(status, 200)
        self.assertEqual(len(body), 4 * 300002)
        self.assertTrue(body.startswith(b"0:xxx"))

    async def test_async_streaming_response(self):
        async with running_worker(get_channel_layer()):
            status, _, body = await request(InterfaceApplication(), path="/astream/")
        self.assertEqual((status, body), (200, b"async-0;async-1;async-2;"))

    async def test_file_response(self):
        async with running_worker(get_channel_layer()):
            status, headers, body = await request(InterfaceApplication(), path="/file/")
        with open(views.__file__, "rb") as f:
            self.assertEqual(body, f.read())
        self.assertIn(
            [b"Content-Disposition", b'attachment; filename="views.py"'], headers
        )

    async def test_set_cookie_headers(self):
        async with running_worker(get_channel_layer()):
            _, headers, _ = await request(InterfaceApplication(), path="/cookies/")
        cookies = [value for name, value in headers if name == b"Set-Cookie"]
        self.assertEqual(len(cookies), 2)
        self.assertIn(b"b=2; HttpOnly; Path=/", cookies)

    async def test_view_error_is_500(self):
        with self.assertLogs("django.request", logging.ERROR):
            async with running_worker(get_channel_layer()):
                status, _, _ = await request(InterfaceApplication(), path="/boom/")
        self.assertEqual(status, 500)

    async def test_not_found(self):
        with self.assertLogs("django.request", logging.WARNING):
            async with running_worker(get_channel_layer()):
                status, _, _ = await request(InterfaceApplication(), path="/nope/")
        self.assertEqual(status, 404)

    async def test_concurrent_requests_get_their_own_replies(self):
        async with running_worker(get_channel_layer(), threads=4):
            app = InterfaceApplication()
            results = await asyncio.gather(
                *(
                    request(
                        app, path="/hello/", query_string=b"name=%d" % i, timeout=10
                    )
                    for i in range(100)
                )
            )
        self.assertEqual(
            [body for _, _, body in results],
            [b"Hello, %d!" % i for i in range(100)],
        )


@override_settings(ROOT_URLCONF="channel_path_tests.urls", CHANNEL_LAYERS=layers())
class ResponseCloseOrderTests(SimpleTestCase):
    """
    When request_finished runs (Response.close()) against when the reply
    goes to the layer.
    """

    async def serve(self):
        layer = get_channel_layer()
        events = []
        original = layer.send_sync

        def send_sync(channel, message):
            if message.get("type") == "http.response.start":
                events.append("reply")
            return original(channel, message)

        def finished(**kwargs):
            events.append("request_finished")

        layer.send_sync = send_sync
        request_finished.connect(finished)
        try:
            async with running_worker(layer):
                status, _, body = await request(InterfaceApplication(), path="/hello/")
        finally:
            request_finished.disconnect(finished)
            del layer.send_sync
        self.assertEqual(status, 200)
        return events

    async def test_reply_then_close(self):
        """
        The reply goes to the layer before request_finished runs, as Django's
        handlers send a response before closing it, in runstack too.
        """
        self.assertEqual(await self.serve(), ["reply", "request_finished"])

    async def test_reply_sent_when_close_fails(self):
        """A failing request_finished receiver is logged; the reply goes."""

        def failing(**kwargs):
            raise ValueError("request_finished failed")

        request_finished.connect(failing)
        try:
            with self.assertLogs("django_fork.channels.worker", "ERROR"):
                events = await self.serve()
        finally:
            request_finished.disconnect(failing)
        # The failing receiver, connected first, stopped the signal.
        self.assertEqual(events, ["reply"])


@override_settings(ROOT_URLCONF="channel_path_tests.urls")
class InterfaceErrorTests(SimpleTestCase):
    @override_settings(CHANNEL_LAYERS=layers(channel_capacity={"http.request": 1}))
    async def test_full_channel_is_503(self):
        """A request channel that stays full for the queue timeout: 503."""
        layer = get_channel_layer()
        await layer.send("http.request", {"type": "filler"})
        with self.assertLogs("django_fork.channels.interface", logging.WARNING) as cm:
            status, _, body = await request(
                InterfaceApplication(queue_timeout=0.2), path="/hello/"
            )
        self.assertEqual(status, 503)
        self.assertIn(b"busy", body)
        self.assertIn("1 gave up", cm.output[0])
        self.assertGreater(
            (await layer.stats(["http.request"]))["http.request"]["full"], 0
        )

    @override_settings(CHANNEL_LAYERS=layers(channel_capacity={"http.request": 1}))
    async def test_full_channel_waits_for_room(self):
        """A full request channel makes the request wait, not fail."""
        layer = get_channel_layer()
        await layer.send("http.request", {"type": "filler"})
        app = InterfaceApplication(queue_timeout=10)
        with self.assertLogs("django_fork.channels.interface", logging.WARNING) as cm:
            answer = asyncio.ensure_future(request(app, path="/hello/", timeout=10))
            await asyncio.sleep(0.3)
            self.assertEqual(app.sends.waiting("http.request"), 1)
            self.assertFalse(answer.done())
            # A worker drains the channel (dropping the filler): room.
            with self.assertLogs("django_fork.channels.http", logging.WARNING):
                async with running_worker(layer):
                    status, _, body = await answer
        self.assertEqual((status, body), (200, b"Hello, world!"))
        self.assertIn("1 sends waited", cm.output[0])

    @override_settings(CHANNEL_LAYERS=layers(channel_capacity={"http.request": 1}))
    async def test_waiting_requests_keep_their_order(self):
        """Requests that wait for room are sent in the order they came."""
        layer = get_channel_layer()
        await layer.send("http.request", {"type": "filler"})
        app = InterfaceApplication(queue_timeout=10)
        communicators = []
        for i in range(5):
            communicator = ApplicationCommunicator(
                app, http_scope(path="/hello/", query_string=b"name=%d" % i)
            )
            await send_body(communicator, b"")
            communicators.append(communicator)
            await asyncio.sleep(0.01)
        self.assertEqual(app.sends.waiting("http.request"), 5)
        with self.assertLogs("django_fork.channels.interface", logging.WARNING):
            names = []
            for _ in range(6):
                message = await asyncio.wait_for(layer.receive("http.request"), 5)
                names.append(message.get("query_string"))
        self.assertEqual(names, [None] + [b"name=%d" % i for i in range(5)])
        for communicator in communicators:
            await communicator.send_input({"type": "http.disconnect"})
            await communicator.wait(2)

    @override_settings(CHANNEL_LAYERS=layers(channel_capacity={"http.request": 1}))
    async def test_buffer_bound_is_503_at_once(self):
        """Past the interface's buffer bound, a request is refused at once."""
        layer = get_channel_layer()
        await layer.send("http.request", {"type": "filler"})
        app = InterfaceApplication(queue_timeout=10, buffer_size=10)
        status, _, _ = await asyncio.wait_for(
            request(app, path="/hello/", headers=[(b"x-pad", b"x" * 20)]), 2
        )
        self.assertEqual(status, 503)

    @override_settings(CHANNEL_LAYERS=layers())
    async def test_no_worker_is_504(self):
        """With no worker to answer, the client gets 504 after the timeout."""
        with self.assertLogs("django_fork.channels.interface", logging.WARNING):
            status, _, _ = await request(
                InterfaceApplication(timeout=0.2), path="/hello/"
            )
        self.assertEqual(status, 504)

    @override_settings(CHANNEL_LAYERS=layers())
    async def test_slow_upload_is_not_a_timeout(self):
        """
        An upload that streams for longer than the timeout is answered: the
        timeout runs from the latest chunk of the body, not from the start.
        """
        app = InterfaceApplication(timeout=0.3, chunk_size=1024)
        communicator = ApplicationCommunicator(
            app, http_scope(method="POST", path="/body-length/")
        )
        async with running_worker(get_channel_layer()):
            for _ in range(8):
                await communicator.send_input(
                    {"type": "http.request", "body": b"x" * 1024, "more_body": True}
                )
                await asyncio.sleep(0.1)
            await communicator.send_input({"type": "http.request", "body": b""})
            status, _, body = await read_response(communicator)
            await communicator.wait(2)
        self.assertEqual((status, json.loads(body)), (200, {"length": 8192}))

    @override_settings(CHANNEL_LAYERS=layers())
    async def test_stalled_upload_is_408(self):
        """A body that stops arriving gets 408; no worker saw it."""
        layer = get_channel_layer()
        app = InterfaceApplication(timeout=0.3, chunk_size=1024)
        communicator = ApplicationCommunicator(
            app, http_scope(method="POST", path="/body-length/")
        )
        await communicator.send_input(
            {"type": "http.request", "body": b"x" * 2048, "more_body": True}
        )
        status, _, _ = await read_response(communicator)
        await communicator.wait(2)
        self.assertEqual(status, 408)
        self.assertEqual(
            (await layer.stats(["http.request"]))["http.request"]["sent"], 0
        )

    @override_settings(
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": "channel_path_tests.test_interface_worker.UnavailableLayer"
            }
        }
    )
    async def test_layer_unavailable_is_503(self):
        with self.assertLogs("django_fork.channels.interface", logging.WARNING):
            status, _, _ = await request(InterfaceApplication(), path="/hello/")
        self.assertEqual(status, 503)

    @override_settings(CHANNEL_LAYERS=layers())
    async def test_disconnect_is_announced(self):
        """A client leaving before its response sends http.disconnect."""
        layer = get_channel_layer()
        communicator = ApplicationCommunicator(
            InterfaceApplication(), http_scope(path="/hello/")
        )
        await send_body(communicator, b"")
        request_message = await asyncio.wait_for(layer.receive("http.request"), 2)
        await communicator.send_input({"type": "http.disconnect"})
        notice = await asyncio.wait_for(layer.receive("http.disconnect"), 2)
        self.assertEqual(notice["reply_channel"], request_message["reply_channel"])
        self.assertEqual(notice["path"], "/hello/")
        await communicator.wait(2)
        # A late reply for the gone client is dropped without error.
        await layer.send(
            request_message["reply_channel"],
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [],
                "body": b"late",
                "more_body": False,
            },
        )

    @override_settings(CHANNEL_LAYERS=layers())
    async def test_disconnect_during_upload_reaches_no_worker(self):
        """
        The interface takes in the whole body before a worker is involved: a
        client leaving mid-upload never reaches one.
        """
        layer = get_channel_layer()
        communicator = ApplicationCommunicator(
            InterfaceApplication(chunk_size=1024),
            http_scope(method="POST", path="/body-length/"),
        )
        await communicator.send_input(
            {"type": "http.request", "body": b"x" * 3000, "more_body": True}
        )
        await asyncio.sleep(0.1)
        await communicator.send_input({"type": "http.disconnect"})
        await communicator.wait(2)
        self.assertEqual(
            (await layer.stats(["http.request"]))["http.request"]["sent"], 0
        )


@override_settings(ROOT_URLCONF="channel_path_tests.urls", CHANNEL_LAYERS=layers())
class WorkerRobustnessTests(SimpleTestCase):
    async def test_malformed_requests_are_dropped(self):
        """Malformed messages are logged and dropped; the worker goes on."""
        layer = get_channel_layer()
        reply = await layer.new_channel("test")
        bad_messages = [
            {"type": "http.request"},
            {"type": "something.else", "reply_channel": reply},
            {"type": "http.request", "version": "9.0", "reply_channel": reply},
        ]
        with self.assertLogs("django_fork.channels.http", logging.WARNING) as logs:
            async with running_worker(layer):
                for message in bad_messages:
                    await layer.send("http.request", message)
                # Those naming a valid reply channel get a 400.
                for _ in range(2):
                    answer = await asyncio.wait_for(layer.receive(reply), 2)
                    self.assertEqual(answer["status"], 400)
                status, _, body = await request(InterfaceApplication(), path="/hello/")
        self.assertEqual((status, body), (200, b"Hello, world!"))
        self.assertEqual(len(logs.records), 3)

    async def test_consumer_errors_are_logged(self):
        calls = []

        def broken(message):
            calls.append(message["n"])
            raise RuntimeError("consumer bug")

        layer = get_channel_layer()
        with self.assertLogs("django_fork.channels.worker", logging.ERROR):
            async with running_worker(layer, routes={"tasks": broken}):
                await layer.send("tasks", {"type": "t", "n": 1})
                await layer.send("tasks", {"type": "t", "n": 2})
                for _ in range(100):
                    if len(calls) == 2:
                        break
                    await asyncio.sleep(0.01)
        self.assertEqual(calls, [1, 2])

    async def test_sync_and_async_consumers(self):
        seen = []

        def sync_consumer(message):
            seen.append(("sync", message["n"]))

        async def async_consumer(message):
            seen.append(("async", message["n"]))

        layer = get_channel_layer()
        routes = {"sync-tasks": sync_consumer, "async-tasks": async_consumer}
        async with running_worker(layer, routes=routes):
            await layer.send("sync-tasks", {"type": "t", "n": 1})
            await layer.send("async-tasks", {"type": "t", "n": 2})
            for _ in range(100):
                if len(seen) == 2:
                    break
                await asyncio.sleep(0.01)
        self.assertEqual(sorted(seen), [("async", 2), ("sync", 1)])

    async def test_only_and_exclude_channels(self):
        layer = get_channel_layer()
        routes = {"images.resize": print, "images.crop": print, "emails": print}
        async with running_worker(
            layer, routes=routes, only_channels=["images.*"]
        ) as worker:
            self.assertEqual(worker.channels, ["images.resize", "images.crop"])
        async with running_worker(
            layer, routes=routes, exclude_channels=["images.*", "http.*"]
        ) as worker:
            self.assertEqual(worker.channels, ["emails"])

    async def test_stop_finishes_in_flight_work(self):
        """stop() lets the view being served finish and takes nothing new."""
        layer = get_channel_layer()
        views.events.clear()
        app = InterfaceApplication(timeout=5)
        async with running_worker(layer, threads=1):
            in_flight = asyncio.ensure_future(
                request(app, path="/slow/", query_string=b"seconds=0.3")
            )
            await asyncio.sleep(0.1)
        # The worker has stopped; the in-flight request completed.
        self.assertEqual(views.events, ["slow finished"])
        status, _, body = await in_flight
        self.assertEqual((status, body), (200, b"slow done"))
        # A request sent now stays on the layer for the next worker.
        queued = asyncio.ensure_future(request(app, path="/hello/"))
        await asyncio.sleep(0.1)
        self.assertEqual(
            (await layer.stats(["http.request"]))["http.request"]["depth"], 1
        )
        async with running_worker(layer):
            status, _, _ = await queued
        self.assertEqual(status, 200)


@override_settings(CHANNEL_LAYERS=layers())
class MalformedReplyTests(SimpleTestCase):
    async def test_malformed_reply_is_502(self):
        """A worker's malformed reply gives the client 502, not a crash."""
        layer = get_channel_layer()
        communicator = ApplicationCommunicator(
            InterfaceApplication(), http_scope(path="/hello/")
        )
        await send_body(communicator, b"")
        message = await asyncio.wait_for(layer.receive("http.request"), 2)
        await layer.send(
            message["reply_channel"],
            {"type": "http.response.start", "status": "200", "headers": []},
        )
        with self.assertLogs("django_fork.channels.interface", logging.WARNING):
            status, _, _ = await read_response(communicator)
        self.assertEqual(status, 502)
        await communicator.wait(2)


@override_settings(ROOT_URLCONF="channel_path_tests.urls", CHANNEL_LAYERS=layers())
class ResponseStreamTests(SimpleTestCase):
    async def test_client_leaving_stops_the_stream(self):
        """A client that goes away stops its view's stream at once."""
        views.events.clear()
        layer = get_channel_layer()
        async with running_worker(layer, threads=1):
            communicator = ApplicationCommunicator(
                InterfaceApplication(), http_scope(path="/endless/")
            )
            await send_body(communicator, b"")
            start = await communicator.receive_output(5)
            self.assertEqual(start["status"], 200)
            for _ in range(3):
                await communicator.receive_output(5)
            await communicator.send_input({"type": "http.disconnect"})
            for _ in range(200):
                if views.events:
                    break
                await asyncio.sleep(0.01)
            self.assertEqual(views.events, ["endless closed"])
            # The only worker thread is free again.
            status, _, _ = await request(InterfaceApplication(), path="/hello/")
            self.assertEqual(status, 200)
            await communicator.wait(5)

    async def test_head_sends_no_body(self):
        """For HEAD, the worker sends headers only, as a server would."""
        layer = get_channel_layer()
        async with running_worker(layer):
            status, headers, body = await request(
                InterfaceApplication(), method="HEAD", path="/file/"
            )
        self.assertEqual((status, body), (200, b""))
        self.assertIn(b"Content-Length", [name for name, _ in headers])
