"""
The interface: an ASGI application that relays HTTP to the channel layer.

Any ASGI server hosts it (uvicorn, daphne, hypercorn). For each request it
sends an http.request message with a reply channel specific to this process,
and relays the reply back to the client. Bodies larger than one chunk travel
as chunk messages on single-reader body channels, in both directions, with
the layer's channel capacity as the backpressure that bounds memory.

The interface is the buffer between clients and workers, as a proxy is for
an application server. It takes in a request's whole body (spooled to disk
beyond one chunk) before a worker is involved, so a slow upload holds no
worker; it waits for room on a full channel (django_fork.channels.flow), and
stops reading from that client meanwhile; it relays a response as fast as
the client reads it, telling the worker that bytes move; and a client that
leaves is reported to the worker that serves it at once.

Errors become plain responses: a channel that stays full for
CHANNEL_QUEUE_TIMEOUT, or an interface whose waiting requests hold
CHANNEL_INTERFACE_BUFFER_SIZE bytes, gives 503; an unreachable layer 503 at
once; no reply within the timeout 504; a body over the configured maximum
413 (at once when its Content-Length says so); a body that stops arriving
408.
"""

import asyncio
import logging
import tempfile
import time

import django
from django.conf import settings

from django_fork.channels.codecs import (
    DEFAULT_CHUNK_SIZE,
    disconnect_message,
    request_body_message,
    request_message,
    validate_body_message,
    validate_response_start,
)
from django_fork.channels.exceptions import (
    ChannelError,
    ChannelFull,
    InvalidMessage,
    InvalidReply,
    MessageTooLarge,
    ReplyTimeout,
)
from django_fork.channels.flow import SendQueue
from django_fork.channels.layers import channel_layers
from django_fork.channels.layers.inmemory import InMemoryChannelLayer
from django_fork.channels.messages import (
    HTTP_DISCONNECT_CHANNEL,
    HTTP_REQUEST_BODY_PREFIX,
    HTTP_REQUEST_CHANNEL,
    HTTP_RESPONSE_PREFIX,
)
from django_fork.channels.websocket_relay import WebSocketRelay
from django_fork.core.checks.channels import exit_on_errors

logger = logging.getLogger("django_fork.channels.interface")

_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Payload Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


#: Bytes of a response body handed to the server at a time: the progress of
#: a slow reader is seen between them.
PIECE_SIZE = 64 * 1024
#: Seconds between the progress reports of a slowly read response.
PROGRESS_INTERVAL = 1.0


class ClientDisconnected(Exception):
    """The HTTP client went away."""


class RequestTimeout(ChannelError):
    """The request body stopped arriving."""

    status_code = 408


def declared_length(scope):
    """Return the request's Content-Length, or None when absent or invalid."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class _Body:
    """
    A request body the interface took in: its first chunk in memory, the
    rest (more is true) in a temporary file.
    """

    def __init__(self):
        self.first = None
        self.spool = None
        self.more = False

    def close(self):
        if self.spool is not None:
            self.spool.close()


class _ResponseState:
    """
    Whether the response has started (errors can then no longer be sent),
    and when the request last made progress: when it was sent, then when
    each further chunk of its body went to the worker.
    """

    started = False
    #: The worker has the whole body, or was told to stop waiting for it.
    body_closed = False
    #: The start message, once it came.
    start = None
    #: Whether the whole response went to the client.
    finished = False

    def __init__(self):
        self.progress_at = time.monotonic()


class _ClientStream:
    """
    A streamed response on its way to the client. The body goes to the
    server in pieces; when the client reads slowly, the worker hears of the
    progress between acknowledgements (http.response.progress), so that a
    slow but live reader is not taken for a dead one. A piece the client
    does not take within the timeout ends the response.
    """

    def __init__(self, interface, send, ack_channel):
        self.interface = interface
        self.send = send
        self.ack_channel = ack_channel
        self.signalled_at = time.monotonic()

    async def write(self, body, more_body):
        if len(body) <= PIECE_SIZE:
            await self._write(body, more_body)
            return
        view = memoryview(body)
        for position in range(0, len(body), PIECE_SIZE):
            last = position + PIECE_SIZE >= len(body)
            piece = bytes(view[position : position + PIECE_SIZE])
            await self._write(piece, more_body or not last)

    async def _write(self, piece, more_body):
        message = {"type": "http.response.body", "body": piece, "more_body": more_body}
        try:
            await asyncio.wait_for(self.send(message), self.interface.timeout)
        except asyncio.TimeoutError:
            raise ClientDisconnected("The client stopped reading.")
        if (
            self.ack_channel is not None
            and more_body
            and time.monotonic() - self.signalled_at >= self.interface.progress_interval
        ):
            self.signalled_at = time.monotonic()
            try:
                await self.interface.layer.send(
                    self.ack_channel, {"type": "http.response.progress"}
                )
            except ChannelError:
                # The next progress report, or the acknowledgement, will do.
                pass

    async def acknowledge(self):
        """Acknowledge a chunk: the worker may send one more."""
        self.signalled_at = time.monotonic()
        interface = self.interface
        try:
            await interface.sends.send(
                interface.layer,
                self.ack_channel,
                {"type": "http.response.ack"},
                interface.timeout,
                control=True,
            )
        except ChannelFull:
            raise ReplyTimeout("The worker stopped taking acknowledgements.")


class _Interrupt:
    """
    Cancel a task waiting for a reply, once, remembering why: "timeout" or
    "client" (the client watcher ended).
    """

    def __init__(self, task):
        self.task = task
        self.reason = None

    def _fire(self, reason):
        if self.reason is None:
            self.reason = reason
            self.task.cancel()

    def timed_out(self):
        self._fire("timeout")

    def client_done(self, client):
        self._fire("client")

    def uncancel(self):
        """Withdraw the cancellation, handled now (Python 3.11+)."""
        uncancel = getattr(self.task, "uncancel", None)
        if uncancel is not None:
            uncancel()


async def _receive_within(receive, timeout):
    """
    Return await receive(), or raise asyncio.TimeoutError after timeout
    seconds. A timer that cancels this task, where wait_for() would run the
    receive in a task of its own (and asyncio.timeout() costs twice as
    much): a request's body usually came whole before it is read.
    """
    interrupt = _Interrupt(asyncio.current_task())
    timer = interrupt.task.get_loop().call_later(timeout, interrupt.timed_out)
    try:
        return await receive()
    except asyncio.CancelledError:
        if interrupt.reason is None:
            raise
        interrupt.uncancel()
        raise asyncio.TimeoutError
    finally:
        timer.cancel()


class InterfaceApplication:
    """
    Relay ASGI HTTP connections to workers over a channel layer.

    Options default to settings: CHANNEL_HTTP_TIMEOUT (seconds to wait for
    the start of a response and for each further chunk, default 60),
    CHANNEL_CHUNK_SIZE (bytes per body message, default 256 KiB),
    CHANNEL_MAX_REQUEST_BODY_SIZE (bytes, default 100 MiB; None: no limit
    beyond Django's own), CHANNEL_QUEUE_TIMEOUT (seconds a request or a
    WebSocket event waits for room on a full channel, default 30),
    CHANNEL_INTERFACE_BUFFER_SIZE (bytes the requests waiting for room may
    hold, default 64 MiB), and for WebSockets CHANNEL_WEBSOCKET_ALLOWED_ORIGINS
    (default None: ALLOWED_HOSTS), CHANNEL_WEBSOCKET_MAX_FRAME_SIZE (bytes,
    default 1 MiB), CHANNEL_WEBSOCKET_IDLE_TIMEOUT (seconds without a client
    frame before closing, default None: never) and
    CHANNEL_WEBSOCKET_ACK_TIMEOUT (seconds a frame may take to be handled,
    default CHANNEL_HTTP_TIMEOUT).
    """

    #: Seconds between the progress reports of a slowly read response.
    progress_interval = PROGRESS_INTERVAL

    def __init__(
        self,
        layer_alias="default",
        timeout=None,
        chunk_size=None,
        max_request_body_size=None,
        websocket_allowed_origins=None,
        websocket_max_frame_size=None,
        websocket_idle_timeout=None,
        websocket_ack_timeout=None,
        queue_timeout=None,
        buffer_size=None,
    ):
        self.layer_alias = layer_alias
        self.timeout = (
            timeout
            if timeout is not None
            else getattr(settings, "CHANNEL_HTTP_TIMEOUT", 60)
        )
        self.chunk_size = chunk_size or getattr(
            settings, "CHANNEL_CHUNK_SIZE", DEFAULT_CHUNK_SIZE
        )
        self.max_request_body_size = (
            max_request_body_size
            if max_request_body_size is not None
            else getattr(settings, "CHANNEL_MAX_REQUEST_BODY_SIZE", 104857600)
        )
        self.queue_timeout = (
            queue_timeout
            if queue_timeout is not None
            else getattr(settings, "CHANNEL_QUEUE_TIMEOUT", 30)
        )
        self.buffer_size = (
            buffer_size
            if buffer_size is not None
            else getattr(settings, "CHANNEL_INTERFACE_BUFFER_SIZE", 67108864)
        )
        self.sends = SendQueue(self.buffer_size)
        # The background tasks that finish the exchanges of clients that
        # left (see abandon()).
        self._abandoned = set()

        self.websocket_allowed_origins = (
            websocket_allowed_origins
            if websocket_allowed_origins is not None
            else getattr(settings, "CHANNEL_WEBSOCKET_ALLOWED_ORIGINS", None)
        )
        self.websocket_max_frame_size = websocket_max_frame_size or getattr(
            settings, "CHANNEL_WEBSOCKET_MAX_FRAME_SIZE", 1024 * 1024
        )
        self.websocket_idle_timeout = websocket_idle_timeout or getattr(
            settings, "CHANNEL_WEBSOCKET_IDLE_TIMEOUT", None
        )
        self.websocket_ack_timeout = websocket_ack_timeout or getattr(
            settings, "CHANNEL_WEBSOCKET_ACK_TIMEOUT", self.timeout
        )

    @property
    def layer(self):
        return channel_layers[self.layer_alias]

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "websocket":
            await WebSocketRelay(self, scope, receive, send).run()
        else:
            raise ValueError("Unknown ASGI scope type %r." % scope["type"])

    async def lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.layer.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def http(self, scope, receive, send):
        declared = declared_length(scope)
        limit = self.max_request_body_size
        if limit is not None and declared is not None and declared > limit:
            await self.send_error(
                send, 413, "The request body is larger than %d bytes." % limit
            )
            return
        try:
            body = await self.take_in_body(receive)
        except ClientDisconnected:
            return
        except ChannelError as e:
            await self.send_error(send, e.status_code, e)
            return
        try:
            await self.serve_http(scope, receive, send, body)
        finally:
            body.close()

    async def serve_http(self, scope, receive, send, body):
        layer = self.layer
        reply_channel = await layer.new_channel(HTTP_RESPONSE_PREFIX)
        body_channel = None
        if body.more:
            body_channel = await layer.new_channel(HTTP_REQUEST_BODY_PREFIX)
        message = request_message(
            scope, reply_channel, body.first, body.more, body_channel
        )
        response = _ResponseState()
        size = len(body.first) + sum(len(n) + len(v) for n, v in scope["headers"])
        try:
            await self.sends.send(
                layer, HTTP_REQUEST_CHANNEL, message, self.queue_timeout, size
            )
        except ChannelFull:
            await self.send_error(send, 503, "The server is busy.")
            return
        except ChannelError as e:
            logger.warning("Could not send a request: %s", e)
            await self.send_error(send, e.status_code, "The server is unavailable.")
            return
        response.progress_at = time.monotonic()
        client = asyncio.ensure_future(
            self.watch_client(receive, body, body_channel, response)
        )
        try:
            await self.relay_response(reply_channel, client, send, response)
        except ClientDisconnected:
            await self.notify_disconnect(reply_channel, scope["path"])
            self.abandon(reply_channel, response)
        except ChannelError as e:
            logger.warning("Request to %s failed: %s", scope["path"], e)
            if not response.started:
                await self.send_error(send, e.status_code, e)
            if isinstance(e, ReplyTimeout):
                self.abandon(reply_channel, response)
        finally:
            client.cancel()
            if client.done() and not client.cancelled():
                client.exception()
            if body_channel is not None and not response.body_closed:
                # The response ended (504, 502) before the body did: stop
                # the worker waiting for the rest of it.
                await self.notify_worker(body_channel)

    async def take_in_body(self, receive):
        """
        Read the whole request body from the client before a worker is
        involved, so that a slow upload holds no worker: the first chunk in
        memory, the rest spooled to a temporary file. Each part must come
        within the timeout (else 408).
        """
        first = await self.receive_part(receive)
        part = first.get("body", b"")
        if not first.get("more_body", False) and len(part) <= self.chunk_size:
            # The usual request: its whole body, if any, in one message.
            self.check_body_size(len(part))
            body = _Body()
            body.first = part if type(part) is bytes else bytes(part)
            return body
        body = _Body()
        try:
            async for chunk, _ in self.read_chunks(receive, first):
                if body.first is None:
                    body.first = chunk
                elif chunk:
                    if body.spool is None:
                        body.spool = tempfile.TemporaryFile(
                            dir=settings.FILE_UPLOAD_TEMP_DIR
                        )
                    body.spool.write(chunk)
            body.more = body.spool is not None
        except BaseException:
            body.close()
            raise
        if body.spool is not None:
            body.spool.seek(0)
        return body

    async def receive_part(self, receive):
        """
        Return the client's next http.request message; raise RequestTimeout
        if none comes within the timeout, ClientDisconnected if the client
        went away.
        """
        try:
            message = await _receive_within(receive, self.timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(
                "No part of the request body within %s seconds." % self.timeout
            )
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        return message

    def check_body_size(self, total):
        """Raise MessageTooLarge if a body of total bytes is over the limit."""
        if (
            self.max_request_body_size is not None
            and total > self.max_request_body_size
        ):
            raise MessageTooLarge(
                "The request body is larger than %d bytes." % self.max_request_body_size
            )

    async def read_chunks(self, receive, first=None):
        """
        Yield (chunk, more_body) pairs of the request body, each chunk_size
        bytes except the last. first is its first message, if already
        received.
        """
        # The parts uvicorn hands over (64 KiB each for a large body) are
        # kept as they come and joined once per chunk.
        chunk_size = self.chunk_size
        parts = []
        buffered = 0
        total = 0
        more_body = True
        while more_body:
            if first is not None:
                message, first = first, None
            else:
                message = await self.receive_part(receive)
            part = message.get("body", b"")
            more_body = message.get("more_body", False)
            total += len(part)
            self.check_body_size(total)
            view = memoryview(part)
            while buffered + len(view) > chunk_size or (
                more_body and buffered + len(view) == chunk_size
            ):
                take = chunk_size - buffered
                parts.append(view[:take])
                view = view[take:]
                yield b"".join(parts), True
                parts = []
                buffered = 0
            if view:
                parts.append(view)
                buffered += len(view)
        yield b"".join(parts), False

    async def watch_client(self, receive, body, body_channel, response):
        """
        Send the rest of the request body, if any, then wait for the client
        to go away. Return only by raising: ClientDisconnected, or the error
        that stopped the body.
        """
        if body_channel is not None:
            chunk = body.spool.read(self.chunk_size)
            while chunk:
                following = body.spool.read(self.chunk_size)
                await self.send_body_chunk(
                    body_channel, request_body_message(chunk, bool(following))
                )
                response.progress_at = time.monotonic()
                chunk = following
            response.body_closed = True
            body.close()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected

    async def send_body_chunk(self, body_channel, message):
        """Send to a body channel, waiting while the worker catches up."""
        try:
            await self.sends.send(self.layer, body_channel, message, self.timeout)
        except ChannelFull:
            raise ReplyTimeout("No worker is reading the request body.")

    async def receive_reply(self, channel, client, timeout=None):
        """
        Return the next message on channel. Raise what ended the client
        watcher if it ends first, ReplyTimeout if nothing comes in time.

        The receive runs in this task, not in one of its own, which would
        cost every reply a turn of the event loop: the client watcher and
        the timeout interrupt it by cancelling this task.
        """
        if timeout is None:
            timeout = self.timeout
        if client.done():
            client.result()
        interrupt = _Interrupt(asyncio.current_task())
        timer = interrupt.task.get_loop().call_later(timeout, interrupt.timed_out)
        client.add_done_callback(interrupt.client_done)
        try:
            return await self.layer.receive(channel)
        except asyncio.CancelledError:
            if interrupt.reason is None:
                raise
            interrupt.uncancel()
            if interrupt.reason == "client":
                client.result()
            raise ReplyTimeout("No reply within %s seconds." % self.timeout)
        finally:
            timer.cancel()
            client.remove_done_callback(interrupt.client_done)

    async def receive_start(self, reply_channel, client, response):
        """
        Return the start of the response. The timeout runs from the latest
        progress of the request: an upload that takes longer than the
        timeout to stream to the worker is not a worker that doesn't answer.
        (Cancelling a receive loses no message, so waiting again is safe.)
        """
        timeout = self.timeout
        while True:
            try:
                return await self.receive_reply(reply_channel, client, timeout)
            except ReplyTimeout:
                idle = time.monotonic() - response.progress_at
                if idle >= self.timeout:
                    raise
                timeout = self.timeout - idle

    async def relay_response(self, reply_channel, client, send, response):
        start = await self.receive_start(reply_channel, client, response)
        try:
            validate_response_start(start)
        except InvalidMessage as e:
            raise InvalidReply(str(e)) from e
        response.started = True
        response.start = start
        await send(
            {
                "type": "http.response.start",
                "status": start["status"],
                "headers": start["headers"],
            }
        )
        if not start["more_body"]:
            response.finished = True
            await send({"type": "http.response.body", "body": start["body"]})
            return
        ack_channel = start.get("ack_channel")
        stream = _ClientStream(self, send, ack_channel)
        await stream.write(start["body"], True)
        more_body = True
        while more_body:
            more_body = await self.relay_chunk(start, client, stream)
            if more_body and ack_channel is not None:
                await stream.acknowledge()
        response.finished = True

    async def relay_chunk(self, start, client, stream):
        """Relay the next response chunk; return whether more follow."""
        message = await self.receive_reply(start["body_channel"], client)
        try:
            validate_body_message(message, "http.response.body")
        except InvalidMessage as e:
            raise InvalidReply(str(e)) from e
        if message["type"] == "http.disconnect":
            raise InvalidReply("The worker abandoned the response.")
        await stream.write(message["body"], message["more_body"])
        return message["more_body"]

    async def notify_worker(self, channel):
        """Tell a worker on its ack or body channel that the client left."""
        await self.sends.send(
            self.layer,
            channel,
            disconnect_message("", "/"),
            self.timeout,
            control=True,
        )

    def abandon(self, reply_channel, response):
        """
        Finish, in the background, the exchange of a client that went away
        (or was answered 504): wait for the start of its response if it has
        not come, tell a worker that streams it to stop, and take what it
        already sent off the layer, so that nothing of it stays in memory
        until it expires.
        """
        task = asyncio.ensure_future(self._abandon(reply_channel, response))
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)

    async def _abandon(self, reply_channel, response):
        start = response.start
        try:
            if start is None:
                start = await asyncio.wait_for(
                    self.layer.receive(reply_channel), self.timeout
                )
            elif response.finished:
                return
            if not (isinstance(start, dict) and start.get("more_body")):
                return
            if start.get("ack_channel"):
                await self.notify_worker(start["ack_channel"])
            # The worker stops after at most a window of chunks, then ends
            # the stream with a final chunk or an http.disconnect.
            while True:
                message = await asyncio.wait_for(
                    self.layer.receive(start["body_channel"]), self.timeout
                )
                if message.get("type") != "http.response.body" or not message.get(
                    "more_body"
                ):
                    return
        except (asyncio.TimeoutError, ChannelError, KeyError, TypeError):
            return

    async def notify_disconnect(self, reply_channel, path):
        """Tell consumers that track connections that a client left."""
        try:
            await self.sends.send(
                self.layer,
                HTTP_DISCONNECT_CHANNEL,
                disconnect_message(reply_channel, path),
                self.timeout,
                control=True,
            )
        except ChannelFull:
            logger.warning("Lost the disconnect notice of a request to %s.", path)

    async def send_error(self, send, status, text):
        body = ("%d %s: %s\n" % (status, _REASONS.get(status, ""), text)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def get_interface_application(**options):
    """
    Return the ASGI interface application, as get_asgi_application() does for
    Django's ASGI handler: settings are loaded and apps populated first.

    Refuse an in-memory layer: its messages never leave this process, where
    no worker runs, so every request would wait for its timeout. (runstack
    runs workers beside the interface and builds its application itself.)

    ASGI servers import this at start-up and run no management command, so a
    configuration mistake exits with one line per problem, not a traceback.
    """
    django.setup(set_prefix=False)
    exit_on_errors()
    application = InterfaceApplication(**options)
    if isinstance(application.layer, InMemoryChannelLayer):
        raise SystemExit(
            "The interface application needs a channel layer shared with "
            "worker processes, but the %r layer is in-memory. Configure a "
            "Redis layer in CHANNEL_LAYERS, or serve interface and workers "
            "in one process with 'manage.py runstack'." % application.layer_alias
        )
    return application
