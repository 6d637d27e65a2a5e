"""
Fuzzing the channel transport's trust boundary: messages a worker or an
interface takes off the layer may come from any process, so every malformed
one must be refused cleanly, never crash a worker, and never reach a view or
a consumer.

Hypothesis runs derandomized with bounded examples, so a run is repeatable
and quick.
"""

import asyncio
import io
import re
import string
from concurrent.futures import ThreadPoolExecutor

from asgiref.testing import ApplicationCommunicator
from channel_path_tests.harness import http_scope, read_response, request
from django.test import SimpleTestCase, override_settings
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_fork.channels.codecs import (
    request_message,
    response_start_message,
    validate_request_message,
    validate_response_start,
    validate_websocket_message,
    websocket_connect_message,
    websocket_disconnect_message,
    websocket_receive_message,
)
from django_fork.channels.exceptions import InvalidChannelName, InvalidMessage
from django_fork.channels.interface import InterfaceApplication
from django_fork.channels.layers import get_channel_layer
from django_fork.channels.messages import HTTP_REQUEST_CHANNEL
from django_fork.channels.names import MAX_NAME_LENGTH, validate_channel_name
from django_fork.channels.routing import Routing
from django_fork.channels.websockets import WebSocketDispatcher
from django_fork.channels.worker import Worker
from django_fork.core.handlers.channel import ChannelHandler

from . import urls, views

IN_MEMORY = {
    "default": {"BACKEND": "django_fork.channels.layers.inmemory.InMemoryChannelLayer"}
}

fuzz = hypothesis_settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)

# Values a layer carries: JSON-capable plus bytes.
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.binary(max_size=12)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
INJECTIONS = [b"\r", b"\n", b"\r\n", b"\x00"]
NAME_CHARS = string.ascii_letters + string.digits + "_.-"
REFERENCE_NAME = re.compile(r"[A-Za-z0-9_.\-]+(?:[!?][A-Za-z0-9_.\-]+)?")
TOKEN = st.text(NAME_CHARS, min_size=1, max_size=10)


def injected(draw, base=b"x-fuzz"):
    """Return base with a CR, LF, CRLF or NUL put somewhere in it."""
    position = draw(st.integers(0, len(base)))
    return base[:position] + draw(st.sampled_from(INJECTIONS)) + base[position:]


@st.composite
def valid_requests(draw):
    path = "/" + draw(st.text(NAME_CHARS + "/%~é", max_size=15))
    scope = http_scope(
        method=draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "OPTIONS"])),
        path=path,
        query_string=draw(st.binary(max_size=20)),
        headers=draw(
            st.lists(
                st.tuples(
                    st.text(string.ascii_lowercase + "-", min_size=1, max_size=8).map(
                        str.encode
                    ),
                    st.binary(max_size=16).filter(
                        lambda v: not any(c in v for c in b"\r\n\0")
                    ),
                ),
                max_size=4,
            )
        ),
    )
    scope["raw_path"] = draw(st.sampled_from([None, path.encode(), b"/%ff%fe"]))
    return request_message(scope, "http.response.fuzz!r1", draw(st.binary(max_size=40)))


def _drop(draw, message):
    if message:
        del message[draw(st.sampled_from(sorted(message)))]


def _replace(draw, message):
    keys = sorted(message) + ["type", "version", "body_channel", "more_body"]
    message[draw(st.sampled_from(keys))] = draw(VALUES)


def _channel(draw, message):
    key = draw(st.sampled_from(["reply_channel", "body_channel"]))
    message[key] = draw(st.text(max_size=30) | TOKEN)
    if key == "body_channel":
        message["more_body"] = True


def _header(draw, message):
    headers = message.get("headers")
    if not isinstance(headers, list):
        headers = message["headers"] = []
    if draw(st.booleans()):
        headers.append([injected(draw), b"value"])
    else:
        headers.append([b"x-fuzz", injected(draw, b"value")])


def _header_shape(draw, message):
    headers = message.get("headers")
    if not isinstance(headers, list):
        headers = message["headers"] = []
    headers.append(
        draw(
            st.sampled_from(
                [
                    ["x-str", "not bytes"],
                    [b"x-one"],
                    [b"x-a", b"b", b"c"],
                    [b"", b"empty name"],
                    [b"x y", b"space in name"],
                    [b"x:y", b"colon in name"],
                    b"x-flat",
                    None,
                ]
            )
        )
    )


def _version(draw, message):
    message["version"] = draw(st.sampled_from(["2.0", "0.9", "", "one", "10.0"]))


MUTATIONS = [_drop, _replace, _channel, _header, _header_shape, _version]


@st.composite
def mutated_requests(draw):
    """A valid http.request message with one to three things broken."""
    message = draw(valid_requests())
    for _ in range(draw(st.integers(1, 3))):
        draw(st.sampled_from(MUTATIONS))(draw, message)
    return message


@st.composite
def mutated_websocket_messages(draw):
    scope = http_scope(path="/ws/" + draw(st.text(NAME_CHARS, max_size=8)))
    connect = websocket_connect_message(scope, "websocket.send.fuzz!w1")
    message = draw(
        st.sampled_from(
            [
                connect,
                websocket_receive_message(connect, 1, text="hi"),
                websocket_receive_message(connect, 1, data=b"hi"),
                websocket_disconnect_message(connect, 1000, 1),
            ]
        )
    )
    message = dict(message)
    for _ in range(draw(st.integers(1, 3))):
        mutation = draw(st.sampled_from(MUTATIONS[:3] + [_frame]))
        mutation(draw, message)
    return message


def _frame(draw, message):
    message["text"] = draw(st.none() | st.text(max_size=5) | st.binary(max_size=5))
    message["bytes"] = draw(st.none() | st.binary(max_size=5) | st.text(max_size=5))


def run(coroutine):
    return asyncio.run(coroutine)


def counting_worker(layer):
    """A Worker whose thread pool is ready without run() (one example)."""
    worker = Worker(layer, routes={}, threads=1)
    worker.loop = asyncio.get_running_loop()
    worker.executor = ThreadPoolExecutor(1)
    consumer = worker.routes[HTTP_REQUEST_CHANNEL]
    # A valid message announcing more body must not wait long for it.
    consumer.body_timeout = 0.05
    return worker, consumer


@override_settings(ROOT_URLCONF="fuzz_tests.urls", CHANNEL_LAYERS=IN_MEMORY)
class RequestMessageFuzzTests(SimpleTestCase):
    def setUp(self):
        views.calls.clear()

    @fuzz
    @given(st.one_of(mutated_requests(), valid_requests()))
    def test_validator_raises_only_invalid_message(self, message):
        """The validator returns the message or raises InvalidMessage."""
        try:
            self.assertIs(validate_request_message(message), message)
        except InvalidMessage:
            pass

    @fuzz
    @given(st.dictionaries(st.text(max_size=12), VALUES, max_size=8), st.booleans())
    def test_arbitrary_dicts(self, message, typed):
        """Any dict a layer can carry is validated without another error."""
        if typed:
            message["type"] = "http.request"
        try:
            validate_request_message(message)
        except InvalidMessage:
            pass

    @fuzz
    @given(st.one_of(mutated_requests(), valid_requests()))
    def test_accepted_messages_build_requests(self, message):
        """
        A message the validator accepts goes through ChannelRequest and the
        whole middleware and view stack without an uncaught error.
        """
        try:
            validate_request_message(message)
        except InvalidMessage:
            return
        response = ChannelHandler()(message, io.BytesIO(message["body"]))
        try:
            self.assertGreaterEqual(response.status_code, 200)
            response.content if not response.streaming else None
        finally:
            response.close()

    @fuzz
    @given(mutated_requests())
    def test_worker_drops_malformed_requests(self, message):
        """
        A malformed http.request never raises out of the worker's consumer
        and never reaches a view; one with a usable reply channel gets 400.
        """
        try:
            validate_request_message(message)
            valid = True
        except InvalidMessage:
            valid = False
        assume(not valid)

        async def consume():
            layer = get_channel_layer()
            worker, consumer = counting_worker(layer)
            try:
                await consumer(layer.copy_message(message))
            finally:
                worker.executor.shutdown()
            try:
                reply_channel = validate_channel_name(message.get("reply_channel"))
            except InvalidChannelName:
                return None
            return await asyncio.wait_for(layer.receive(reply_channel), 1)

        reply = run(consume())
        self.assertEqual(views.calls, [])
        if reply is not None:
            self.assertEqual(reply["status"], 400)

    @hypothesis_settings(fuzz, max_examples=8)
    @given(st.lists(mutated_requests(), min_size=1, max_size=12))
    def test_worker_survives_malformed_messages(self, messages):
        """
        A running worker fed malformed messages goes on serving: the valid
        request sent after them is answered, and only it reaches the view.
        """
        messages = [m for m in messages if not _is_valid(m)]

        async def serve():
            layer = get_channel_layer()
            worker = Worker(layer, routes={}, threads=1)
            task = asyncio.ensure_future(worker.run())
            try:
                for message in messages:
                    await layer.send(HTTP_REQUEST_CHANNEL, message)
                status, _, body = await request(
                    InterfaceApplication(), path="/after/", timeout=5
                )
            finally:
                worker.stop()
                await asyncio.wait_for(task, 5)
            return status, body, worker.handled

        views.calls.clear()
        status, body, handled = run(serve())
        self.assertEqual((status, body), (200, b"counted"))
        self.assertEqual(views.calls, ["/after/"])
        self.assertEqual(handled, len(messages) + 1)


def _is_valid(message):
    try:
        validate_request_message(message)
    except InvalidMessage:
        return False
    return True


@override_settings(ROOT_URLCONF="fuzz_tests.urls", CHANNEL_LAYERS=IN_MEMORY)
class WebSocketMessageFuzzTests(SimpleTestCase):
    def setUp(self):
        views.calls.clear()

    @fuzz
    @given(mutated_websocket_messages())
    def test_malformed_events_never_reach_a_consumer(self, message):
        """
        The validator raises only InvalidMessage; the worker's dispatcher
        drops what it refuses without calling a consumer.
        """
        views.calls.clear()
        try:
            validate_websocket_message(message)
            valid = True
        except InvalidMessage:
            valid = False

        async def dispatch():
            layer = get_channel_layer()
            worker = Worker(layer, routes={}, threads=1)
            routing = Routing(websocket_urlpatterns=urls.websocket_urlpatterns)
            await WebSocketDispatcher(worker, routing)(layer.copy_message(message))

        run(dispatch())
        if not valid:
            self.assertEqual(views.calls, [])
        else:
            self.assertEqual(views.calls, [message["type"]])


class ChannelNameFuzzTests(SimpleTestCase):
    @fuzz
    @given(st.text(NAME_CHARS + "!?*: /\r\n\x00é", max_size=MAX_NAME_LENGTH + 10))
    def test_grammar(self, name):
        """A name is valid exactly when it follows the documented grammar."""
        expected = len(name) <= MAX_NAME_LENGTH and REFERENCE_NAME.fullmatch(name)
        try:
            validate_channel_name(name)
            accepted = True
        except InvalidChannelName:
            accepted = False
        self.assertEqual(accepted, bool(expected))

    @fuzz
    @given(st.one_of(VALUES, st.text(max_size=20)))
    def test_layer_refuses_invalid_names(self, name):
        """A layer refuses to send to an invalid name, whatever its type."""
        layer = get_channel_layer()
        try:
            validate_channel_name(name)
        except InvalidChannelName:
            with self.assertRaises(InvalidChannelName):
                layer.send_sync(name, {"type": "fuzz"})

    @override_settings(CHANNEL_LAYERS=IN_MEMORY)
    def test_new_channel_names_are_valid(self):
        layer = get_channel_layer()
        for prefix in ("http.response", "fuzz?", "fuzz!", "a-b_c.d"):
            validate_channel_name(layer.new_channel_sync(prefix))


@override_settings(ROOT_URLCONF="fuzz_tests.urls", CHANNEL_LAYERS=IN_MEMORY)
class HeaderInjectionTests(SimpleTestCase):
    def setUp(self):
        views.calls.clear()

    @fuzz
    @given(st.data())
    def test_request_headers(self, data):
        """CR, LF or NUL in a request header's name or value: refused, 400."""
        message = data.draw(valid_requests())
        if data.draw(st.booleans()):
            message["headers"].append([injected(data.draw), b"value"])
        else:
            message["headers"].append([b"x-fuzz", injected(data.draw, b"value")])
        with self.assertRaises(InvalidMessage):
            validate_request_message(message)

        async def consume():
            layer = get_channel_layer()
            worker, consumer = counting_worker(layer)
            try:
                await consumer(message)
            finally:
                worker.executor.shutdown()
            return await asyncio.wait_for(layer.receive(message["reply_channel"]), 1)

        self.assertEqual(run(consume())["status"], 400)
        self.assertEqual(views.calls, [])

    @fuzz
    @given(st.data())
    def test_response_headers(self, data):
        """
        A reply whose header name or value holds CR, LF or NUL is refused by
        the interface with 502; the header never reaches the ASGI server.
        """
        if data.draw(st.booleans()):
            header = [injected(data.draw), b"value"]
        else:
            header = [b"x-fuzz", injected(data.draw, b"value")]
        start = response_start_message(200, [header], b"body")
        with self.assertRaises(InvalidMessage):
            validate_response_start(start)

        async def exchange():
            layer = get_channel_layer()
            communicator = ApplicationCommunicator(
                InterfaceApplication(timeout=2), http_scope(path="/")
            )
            await communicator.send_input({"type": "http.request", "body": b""})
            message = await asyncio.wait_for(layer.receive(HTTP_REQUEST_CHANNEL), 2)
            await layer.send(message["reply_channel"], start)
            try:
                return await read_response(communicator)
            finally:
                await communicator.wait(2)

        status, headers, _ = run(exchange())
        self.assertEqual(status, 502)
        self.assertNotIn(header[0], [name for name, _ in headers])

    def test_nul_in_a_view_header(self):
        """Django lets a NUL through in a header value; the interface won't."""

        async def exchange():
            worker = Worker(get_channel_layer(), routes={}, threads=1)
            task = asyncio.ensure_future(worker.run())
            try:
                return await request(InterfaceApplication(), path="/nul-header/")
            finally:
                worker.stop()
                await asyncio.wait_for(task, 5)

        status, headers, _ = run(exchange())
        self.assertEqual(status, 502)
        self.assertNotIn(b"X-Nul", [name for name, _ in headers])


@override_settings(ROOT_URLCONF="fuzz_tests.urls", CHANNEL_LAYERS=IN_MEMORY)
class OversizedTests(SimpleTestCase):
    def setUp(self):
        views.calls.clear()

    def serve(self, app, **kwargs):
        async def exchange():
            worker = Worker(get_channel_layer(), routes={}, threads=1)
            task = asyncio.ensure_future(worker.run())
            try:
                return await request(app, **kwargs)
            finally:
                worker.stop()
                await asyncio.wait_for(task, 5)

        return run(exchange())

    @hypothesis_settings(fuzz, max_examples=10)
    @given(st.integers(1001, 300 * 1024))
    def test_body_over_the_interface_limit(self, size):
        """A body over CHANNEL_MAX_REQUEST_BODY_SIZE: 413, no view runs."""
        status, _, _ = self.serve(
            InterfaceApplication(max_request_body_size=1000, chunk_size=4096),
            method="POST",
            path="/count/",
            body=b"x" * size,
        )
        self.assertEqual(status, 413)
        self.assertEqual(views.calls, [])

    @override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
    def test_body_over_django_limit(self):
        """A body over DATA_UPLOAD_MAX_MEMORY_SIZE read by a view: 400."""
        status, _, _ = self.serve(
            InterfaceApplication(chunk_size=4096),
            method="POST",
            path="/read-body/",
            body=b"x" * 20000,
        )
        self.assertEqual(status, 400)

    def test_many_headers(self):
        """Ten thousand headers build a request; repeated ones are joined."""
        scope = http_scope(headers=[(b"x-many", b"v")] * 10000)
        message = validate_request_message(
            request_message(scope, "http.response.fuzz!r1")
        )
        response = ChannelHandler()(message, io.BytesIO())
        try:
            self.assertEqual(response.status_code, 200)
        finally:
            response.close()
        self.assertEqual(views.calls, ["/"])


class BodyChunkingTests(SimpleTestCase):
    """The interface cuts any sequence of body parts into whole chunks."""

    @fuzz
    @given(
        parts=st.lists(st.binary(max_size=300), max_size=12),
        chunk_size=st.integers(min_value=1, max_value=256),
    )
    def test_read_chunks(self, parts, chunk_size):
        messages = [
            {"type": "http.request", "body": part, "more_body": True} for part in parts
        ]
        messages.append({"type": "http.request", "body": b"", "more_body": False})

        async def collect():
            pending = iter(messages)

            async def receive():
                return next(pending)

            app = InterfaceApplication(chunk_size=chunk_size)
            return [chunk async for chunk in app.read_chunks(receive)]

        chunks = asyncio.run(collect())
        self.assertEqual(b"".join(chunk for chunk, _ in chunks), b"".join(parts))
        self.assertEqual(
            [more for _, more in chunks], [True] * (len(chunks) - 1) + [False]
        )
        for chunk, _ in chunks[:-1]:
            self.assertEqual(len(chunk), chunk_size)
        self.assertLessEqual(len(chunks[-1][0]), chunk_size)
        for chunk, _ in chunks:
            self.assertIs(type(chunk), bytes)
