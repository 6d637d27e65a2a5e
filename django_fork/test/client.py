"""
Test clients whose requests travel the channel path in-process.

ChannelClient is django.test.Client and AsyncChannelClient is
django.test.AsyncClient, with one difference: their handler does not call the
view. It hands the request, as an ASGI scope, to the interface application,
which sends the http.request message (and body chunks) over the configured
channel layer; an in-process worker takes the message off the layer and serves
it with HttpConsumer and ChannelHandler; the interface relays the reply
messages back, and the handler turns them into the response the test gets.
Everything else (cookies, sessions, login, follow, templates and context,
exceptions) is Client's own code.
"""

import asyncio
import contextvars
from urllib.parse import quote

from asgiref.sync import async_to_sync
from django.core.signals import request_finished
from django.db import close_old_connections
from django.http import HttpResponse, StreamingHttpResponse
from django.test.client import (
    AsyncClient,
    Client,
    FakePayload,
    conditional_content_removal,
)
from django.utils.encoding import repercent_broken_unicode

from django_fork.channels.interface import InterfaceApplication
from django_fork.channels.layers import DEFAULT_CHANNEL_LAYER_ALIAS, channel_layers
from django_fork.channels.messages import HTTP_REQUEST_CHANNEL
from django_fork.core.handlers.channel import ChannelHandler
from django_fork.test.worker import InProcessWorker, keep_test_connections

__all__ = [
    "AsyncChannelClient",
    "AsyncChannelClientHandler",
    "ChannelClient",
    "ChannelClientHandler",
    "ResponseMismatch",
    "scope_from_environ",
]

# Characters a path keeps unquoted in raw_path: RFC 3986's pchar plus "/".
_PATH_SAFE = "/:@!$&'()*+,;=-._~"

# What the ChannelHandler served during one exchange: the test client
# attaches the view's request to the response.
_served = contextvars.ContextVar("django_fork_test_served")


def _latin1(value):
    """
    Return the bytes behind a WSGI-style str (bytes decoded as latin-1);
    values that can't be (non-latin-1 text a test passed) are UTF-8 encoded.
    """
    value = str(value)
    try:
        return value.encode("latin1")
    except UnicodeEncodeError:
        return value.encode()


def _port(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _http_version(protocol):
    if isinstance(protocol, str) and protocol.startswith("HTTP/"):
        return protocol[len("HTTP/") :]
    return "1.1"


def http_scope(method, path_bytes, root_path="", **scope):
    """
    Return an ASGI HTTP scope for a path given as bytes (after percent
    decoding, as WSGI's PATH_INFO holds it), root_path included.
    """
    # ASGI's path includes root_path; SCRIPT_NAME never ends with "/".
    path_bytes = (_latin1(root_path.rstrip("/")) + path_bytes) or b"/"
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "http",
        "query_string": b"",
        "headers": [],
        **scope,
        "method": method.upper(),
        "path": repercent_broken_unicode(path_bytes).decode(),
        # Quote the path again: the worker decodes raw_path, as a WSGI server
        # decodes the request line, so a "%" that PATH_INFO holds stays one.
        "raw_path": quote(path_bytes, safe=_PATH_SAFE).encode("ascii"),
        "root_path": root_path,
    }


def scope_from_environ(environ):
    """
    Return (scope, body): the ASGI HTTP scope and the body of a request that
    django.test.RequestFactory built as a WSGI environ.

    The message carries HTTP, not WSGI: headers (HTTP_* keys, CONTENT_TYPE,
    CONTENT_LENGTH) travel, and so do the method, path, query string, scheme,
    SCRIPT_NAME (as root_path), SERVER_NAME/SERVER_PORT, REMOTE_ADDR and
    SERVER_PROTOCOL. Other environ keys have nowhere to go.
    """
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[len("HTTP_") :]
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key
        else:
            continue
        headers.append([name.lower().replace("_", "-").encode(), _latin1(value)])
    remote_addr = environ.get("REMOTE_ADDR")
    stream = environ.get("wsgi.input")
    body = stream.read() if stream is not None else b""
    scope = http_scope(
        environ.get("REQUEST_METHOD", "GET"),
        _latin1(environ.get("PATH_INFO", "/")),
        root_path=environ.get("SCRIPT_NAME", "") or "",
        http_version=_http_version(environ.get("SERVER_PROTOCOL")),
        scheme=environ.get("wsgi.url_scheme", "http"),
        query_string=_latin1(environ.get("QUERY_STRING", "")),
        headers=headers,
        client=(
            [str(remote_addr), _port(environ.get("REMOTE_PORT")) or 0]
            if remote_addr
            else None
        ),
        server=[
            str(environ.get("SERVER_NAME", "testserver")),
            _port(environ.get("SERVER_PORT")),
        ],
    )
    return scope, body


def _scope_from_test_scope(scope):
    """
    Return (scope, body) for a scope that django.test.AsyncRequestFactory
    built: normalize what ASGIRequest tolerates and a message doesn't (a str
    query string, a str port) and take the body from its "_body_file".
    """
    scope = dict(scope)
    body_file = scope.pop("_body_file", None) or FakePayload(b"")
    body = body_file.read()
    query_string = scope.get("query_string", b"")
    if isinstance(query_string, str):
        query_string = query_string.encode()
    client = scope.get("client")
    server = scope.get("server")
    path = scope.pop("path", "/")
    raw_path = scope.pop("raw_path", None)
    return (
        http_scope(
            scope.pop("method", "GET"),
            raw_path if raw_path else _latin1(path),
            root_path=scope.pop("root_path", "") or "",
            **{
                **scope,
                "query_string": query_string,
                "headers": [[bytes(n), bytes(v)] for n, v in scope["headers"]],
                "client": [str(client[0]), _port(client[1])] if client else None,
                "server": [str(server[0]), _port(server[1])] if server else None,
            },
        ),
        body,
    )


def response_from_events(events, async_stream=False):
    """
    Return the HttpResponse (or StreamingHttpResponse) that the ASGI events
    an interface sent describe.

    A response whose first body event is empty but announces more body was
    streamed: the worker sends a StreamingHttpResponse's start at once, with
    no body, while any other response's start message carries its content (or
    the first chunk of it). Its streaming_content is an async iterator if
    async_stream is true. Set-Cookie headers become response.cookies, as
    Django keeps them.
    """
    start, *bodies = events
    parts = [event.get("body", b"") for event in bodies]
    streaming = bool(bodies) and bodies[0].get("more_body", False) and not parts[0]
    if streaming:
        parts = [part for part in parts if part]
        response = StreamingHttpResponse(
            _aiter(parts) if async_stream else parts, status=start["status"]
        )
    else:
        response = HttpResponse(b"".join(parts), status=start["status"])
    del response.headers["Content-Type"]
    for name, value in start["headers"]:
        name = name.decode("latin1")
        value = value.decode("latin1")
        if name.lower() == "set-cookie":
            response.cookies.load(value)
        else:
            response.headers[name] = value
    if "Location" in response.headers:
        # HttpResponseRedirectBase.url, which assertRedirects() and follow
        # read.
        response.url = response.headers["Location"]
    return response


async def _aiter(parts):
    for part in parts:
        yield part


class _Served:
    """What the test client learns from the worker about one request."""

    request = None
    #: The response object the view (and middleware) returned, in the worker.
    response = None
    async_stream = False


class ResponseMismatch(AssertionError):
    """
    The response that came back over the channel path is not the one the
    view returned: its attributes must not be attached to it.
    """


# Attributes of a response object that HTTP carries (or that only serve to
# produce what it carries): they come from the messages, never from the
# view's object.
_WIRE_ATTRIBUTES = frozenset(
    {
        "headers",
        "cookies",
        "status_code",
        "_reason_phrase",
        "_charset",
        "_container",
        "_iterator",
        "streaming",
        "is_async",
        "closed",
        "_resource_closers",
        "_handler_class",
        "file_to_stream",
        "block_size",
    }
)


# Responses that HTTP sends without a body (RFC 9110, 6.4.1).
_NO_BODY_STATUSES = frozenset({*range(100, 200), 204, 304})


def check_same_response(response, view_response, method):
    """
    Raise ResponseMismatch unless response, decoded from the reply messages,
    is view_response as HTTP carries it: the same status, every header of
    view_response with its value, and, unless it streamed, the same body
    (none for HEAD, 1xx, 204 and 304, as servers may send them).
    """
    problems = []
    if response.status_code != view_response.status_code:
        problems.append(
            "status %s, not %s" % (response.status_code, view_response.status_code)
        )
    for name, value in view_response.headers.items():
        if response.headers.get(name) != value:
            problems.append(
                "header %s: %r, not %r" % (name, response.headers.get(name), value)
            )
    if not response.streaming and not view_response.streaming:
        body = response.content
        bodiless = method == "HEAD" or response.status_code in _NO_BODY_STATUSES
        if body != view_response.content and not (bodiless and not body):
            problems.append(
                "a body of %d bytes, not the %d bytes of the view's response"
                % (len(body), len(view_response.content))
            )
    if problems:
        raise ResponseMismatch(
            "The response that came over the channel path differs from the "
            "view's response: %s." % "; ".join(problems)
        )


def carry_view_attributes(response, view_response, method):
    """
    Give response, decoded from the reply messages, the attributes of the
    view's response object that HTTP does not carry (a REST framework's
    data, a TemplateResponse's context_data, an attribute a view set), after
    checking that the bytes that came back are that object's. Attributes the
    decoded response has already (url, from Location) keep their value.
    """
    check_same_response(response, view_response, method)
    own = vars(response)
    for name, value in vars(view_response).items():
        if name not in _WIRE_ATTRIBUTES and name not in own:
            setattr(response, name, value)


class _ClientChannelHandler(ChannelHandler):
    """ChannelHandler that records its requests and may skip CSRF checks."""

    def __init__(self, enforce_csrf_checks):
        self.enforce_csrf_checks = enforce_csrf_checks
        super().__init__()

    def __call__(self, message, body_file):
        served = _Served()
        _served.get([]).append(served)
        response = super().__call__(message, body_file)
        # How the view's stream is iterated doesn't travel in the messages;
        # the client gives back what the view gave, as Client does.
        served.async_stream = response.streaming and response.is_async
        served.response = response
        # A Client() used inside the view reconnected close_old_connections
        # when its own request ended: keep it away from this response's
        # request_finished.
        request_finished.disconnect(close_old_connections)
        return response

    def get_response(self, request):
        # As django.test.client.ClientHandler does, to let tests post without
        # a CSRF token.
        request._dont_enforce_csrf_checks = not self.enforce_csrf_checks
        records = _served.get(None)
        if records:
            records[-1].request = request
        return self.serve(request)

    def serve(self, request):
        """Return the response of the middleware and the view to request."""
        return super().get_response(request)


class _ExchangeMixin:
    """Send a scope through the interface, the layer and a worker."""

    def __init__(self, enforce_csrf_checks=True, layer=DEFAULT_CHANNEL_LAYER_ALIAS):
        self.enforce_csrf_checks = enforce_csrf_checks
        self.layer = layer
        self._channel_handler = None

    def get_channel_handler(self):
        """
        Return the ChannelHandler the worker serves this client's requests
        with, building it (and loading middleware) on first use, as
        ClientHandler loads middleware on its first request.
        """
        handler = self._channel_handler
        if handler is None:
            handler = self._channel_handler = _ClientChannelHandler(
                self.enforce_csrf_checks
            )
        handler.enforce_csrf_checks = self.enforce_csrf_checks
        return handler

    async def exchange(self, scope, body, handler):
        """
        Serve scope and body over the channel path; return the response and
        the ChannelRequest the view saw (None if the worker refused the
        message before building one).

        The response is decoded from the reply messages; it also carries the
        attributes of the view's response object that HTTP does not (see
        carry_view_attributes()).
        """
        layer = channel_layers[self.layer]
        interface = InterfaceApplication(layer_alias=self.layer)
        worker = InProcessWorker(layer, handler=handler)
        events = []
        served = []
        _served.set(served)
        body_sent = False

        async def receive():
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            # The client stays connected until the response is complete.
            await asyncio.Future()

        async def send(event):
            events.append(event)

        async def serve(app):
            # Serve http.request, as a worker does, until the interface has
            # relayed the response: requests queued before this one are
            # served first.
            while not app.done():
                take = asyncio.ensure_future(layer.receive(HTTP_REQUEST_CHANNEL))
                await asyncio.wait({take, app}, return_when=asyncio.FIRST_COMPLETED)
                if not take.done():
                    take.cancel()
                    await asyncio.gather(take, return_exceptions=True)
                    return None
                exc_info = await worker.run_message(HTTP_REQUEST_CHANNEL, take.result())
                if exc_info is not None:
                    return exc_info
            return None

        with keep_test_connections():
            app = asyncio.ensure_future(interface(scope, receive, send))
            try:
                exc_info = await serve(app)
                if exc_info is not None:
                    # A failure outside the view (the view's own exceptions
                    # become responses): nothing will reply, so raise it, as
                    # Client raises what its handler raises.
                    raise exc_info[1].with_traceback(exc_info[2])
                await app
            finally:
                if not app.done():
                    app.cancel()
                    await asyncio.gather(app, return_exceptions=True)
        # Requests queued before this one were served first.
        last = served[-1] if served else _Served()
        response = response_from_events(events, last.async_stream)
        if last.response is not None:
            carry_view_attributes(response, last.response, scope["method"])
        if last.request is not None:
            conditional_content_removal(last.request, response)
        return response, last.request


class ChannelClientHandler(_ExchangeMixin):
    """
    The handler of ChannelClient: take a WSGI environ, as ClientHandler does,
    and return the response that came back over the channel path, with the
    ChannelRequest the view saw as response.wsgi_request.
    """

    def __call__(self, environ):
        scope, body = scope_from_environ(environ)
        handler = self.get_channel_handler()
        response, request = async_to_sync(self.exchange)(scope, body, handler)
        response.wsgi_request = request
        return response


class AsyncChannelClientHandler(_ExchangeMixin):
    """
    The handler of AsyncChannelClient: take an ASGI scope, as
    AsyncClientHandler does, and return the response that came back over the
    channel path, with the ChannelRequest the view saw as
    response.asgi_request.
    """

    async def __call__(self, scope):
        scope, body = _scope_from_test_scope(scope)
        handler = self.get_channel_handler()
        response, request = await self.exchange(scope, body, handler)
        response.asgi_request = request
        return response


class _ChannelClientMixin:
    """A test client whose handler serves requests over the channel path."""

    handler_class = None

    def __init__(
        self,
        enforce_csrf_checks=False,
        raise_request_exception=True,
        *,
        layer=DEFAULT_CHANNEL_LAYER_ALIAS,
        **kwargs,
    ):
        super().__init__(enforce_csrf_checks, raise_request_exception, **kwargs)
        self.handler = self.handler_class(enforce_csrf_checks, layer=layer)


class ChannelClient(_ChannelClientMixin, Client):
    """
    A django.test.Client whose requests go through the channel path: the
    interface, the channel layer (the layer alias, "default" unless given),
    and a worker that runs in the test's thread.
    """

    handler_class = ChannelClientHandler


class AsyncChannelClient(_ChannelClientMixin, AsyncClient):
    """The async twin of ChannelClient: AsyncClient over the channel path."""

    handler_class = AsyncChannelClientHandler
