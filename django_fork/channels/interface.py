"""
The interface: an ASGI application that relays HTTP to the channel layer.

Any ASGI server hosts it (uvicorn, daphne, hypercorn). For each request it
sends an http.request message with a reply channel specific to this process,
and relays the reply back to the client. Bodies larger than one chunk travel
as chunk messages on single-reader body channels, in both directions, with
the layer's channel capacity as the backpressure that bounds memory.

Errors become plain responses: a full request channel or an unreachable layer
gives 503 at once, no reply within the timeout gives 504, a body over the
configured maximum gives 413.
"""

import asyncio
import logging
import time

import django
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

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
from django_fork.channels.layers import channel_layers
from django_fork.channels.layers.inmemory import InMemoryChannelLayer
from django_fork.channels.messages import (
    HTTP_DISCONNECT_CHANNEL,
    HTTP_REQUEST_BODY_PREFIX,
    HTTP_REQUEST_CHANNEL,
    HTTP_RESPONSE_PREFIX,
)
from django_fork.channels.websocket_relay import WebSocketRelay

logger = logging.getLogger("django_fork.channels.interface")

_REASONS = {
    400: "Bad Request",
    413: "Payload Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class ClientDisconnected(Exception):
    """The HTTP client went away."""


class _ResponseState:
    """
    Whether the response has started (errors can then no longer be sent),
    and when the request last made progress: when it was sent, then when
    each further chunk of its body went to the worker.
    """

    started = False
    #: The worker has the whole body, or was told to stop waiting for it.
    body_closed = False

    def __init__(self):
        self.progress_at = time.monotonic()


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


class InterfaceApplication:
    """
    Relay ASGI HTTP connections to workers over a channel layer.

    Options default to settings: CHANNEL_HTTP_TIMEOUT (seconds to wait for
    the start of a response and for each further chunk, default 60),
    CHANNEL_CHUNK_SIZE (bytes per body message, default 256 KiB),
    CHANNEL_MAX_REQUEST_BODY_SIZE (bytes, default None: no limit beyond
    Django's own), and for WebSockets CHANNEL_WEBSOCKET_ALLOWED_ORIGINS
    (default None: ALLOWED_HOSTS), CHANNEL_WEBSOCKET_MAX_FRAME_SIZE (bytes,
    default 1 MiB), CHANNEL_WEBSOCKET_IDLE_TIMEOUT (seconds without a client
    frame before closing, default None: never) and
    CHANNEL_WEBSOCKET_ACK_TIMEOUT (seconds a frame may take to be handled,
    default CHANNEL_HTTP_TIMEOUT).
    """

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
            else getattr(settings, "CHANNEL_MAX_REQUEST_BODY_SIZE", None)
        )

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
        layer = self.layer
        reply_channel = await layer.new_channel(HTTP_RESPONSE_PREFIX)
        chunks = self.read_chunks(receive)
        try:
            body, more_body = await anext(chunks)
        except ClientDisconnected:
            return
        except MessageTooLarge as e:
            await self.send_error(send, e.status_code, e)
            return
        body_channel = None
        if more_body:
            body_channel = await layer.new_channel(HTTP_REQUEST_BODY_PREFIX)
        message = request_message(scope, reply_channel, body, more_body, body_channel)
        response = _ResponseState()
        try:
            await layer.send(HTTP_REQUEST_CHANNEL, message)
        except ChannelFull:
            await self.send_error(send, 503, "The server is busy.")
            return
        except ChannelError as e:
            logger.warning("Could not send a request: %s", e)
            await self.send_error(send, e.status_code, "The server is unavailable.")
            return
        response.progress_at = time.monotonic()
        client = asyncio.ensure_future(
            self.watch_client(receive, chunks, body_channel, response)
        )
        try:
            await self.relay_response(reply_channel, client, send, response)
        except ClientDisconnected:
            await self.notify_disconnect(reply_channel, scope["path"])
        except ChannelError as e:
            logger.warning("Request to %s failed: %s", scope["path"], e)
            if not response.started:
                await self.send_error(send, e.status_code, e)
        finally:
            client.cancel()
            if client.done() and not client.cancelled():
                client.exception()
            if body_channel is not None and not response.body_closed:
                # The response ended (504, 502) before the body did: stop
                # the worker waiting for the rest of it.
                await self.notify_worker(body_channel, None)

    async def read_chunks(self, receive):
        """
        Yield (chunk, more_body) pairs of the request body, each chunk_size
        bytes except the last.
        """
        # The parts uvicorn hands over (64 KiB each for a large body) are
        # kept as they come and joined once per chunk.
        chunk_size = self.chunk_size
        parts = []
        buffered = 0
        total = 0
        more_body = True
        while more_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            part = message.get("body", b"")
            more_body = message.get("more_body", False)
            total += len(part)
            if (
                self.max_request_body_size is not None
                and total > self.max_request_body_size
            ):
                raise MessageTooLarge(
                    "The request body is larger than %d bytes."
                    % self.max_request_body_size
                )
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

    async def watch_client(self, receive, chunks, body_channel, response):
        """
        Send the rest of the request body, if any, then wait for the client
        to go away. Return only by raising: ClientDisconnected, or the error
        that stopped the body.
        """
        if body_channel is not None:
            try:
                async for chunk, more_body in chunks:
                    await self.send_body_chunk(
                        body_channel, request_body_message(chunk, more_body)
                    )
                    response.progress_at = time.monotonic()
            except (ClientDisconnected, MessageTooLarge):
                # Tell the worker waiting for the body to give up.
                await self.send_body_chunk(
                    body_channel, disconnect_message("", "/"), quiet=True
                )
                response.body_closed = True
                raise
            response.body_closed = True
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected

    async def send_body_chunk(self, body_channel, message, quiet=False):
        """Send to a body channel, waiting while the worker catches up."""
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        while True:
            try:
                await self.layer.send(body_channel, message)
                return
            except ChannelFull:
                if time.monotonic() > deadline:
                    if quiet:
                        return
                    raise ReplyTimeout("No worker is reading the request body.")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)

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
        await send(
            {
                "type": "http.response.start",
                "status": start["status"],
                "headers": start["headers"],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": start["body"],
                "more_body": start["more_body"],
            }
        )
        more_body = start["more_body"]
        ack_channel = start.get("ack_channel")
        try:
            while more_body:
                more_body = await self.relay_chunk(start, client, send)
                if more_body and ack_channel is not None:
                    await self.layer.send(ack_channel, {"type": "http.response.ack"})
        except ClientDisconnected:
            if ack_channel is not None:
                # Stop the worker: it waits for acknowledgements.
                await self.notify_worker(ack_channel, start)
            raise

    async def notify_worker(self, ack_channel, start):
        try:
            await self.layer.send(ack_channel, disconnect_message("", "/"))
        except ChannelError:
            pass

    async def relay_chunk(self, start, client, send):
        """Relay the next response chunk; return whether more follow."""
        message = await self.receive_reply(start["body_channel"], client)
        try:
            validate_body_message(message, "http.response.body")
        except InvalidMessage as e:
            raise InvalidReply(str(e)) from e
        if message["type"] == "http.disconnect":
            raise InvalidReply("The worker abandoned the response.")
        await send(
            {
                "type": "http.response.body",
                "body": message["body"],
                "more_body": message["more_body"],
            }
        )
        return message["more_body"]

    async def notify_disconnect(self, reply_channel, path):
        try:
            await self.layer.send(
                HTTP_DISCONNECT_CHANNEL, disconnect_message(reply_channel, path)
            )
        except ChannelError:
            # Best effort: the notice only informs consumers that track
            # connections.
            pass

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
    """
    django.setup(set_prefix=False)
    application = InterfaceApplication(**options)
    if isinstance(application.layer, InMemoryChannelLayer):
        raise ImproperlyConfigured(
            "The interface application needs a channel layer shared with "
            "worker processes, but the %r layer is in-memory. Configure a "
            "Redis layer in CHANNEL_LAYERS, or serve interface and workers "
            "in one process with 'manage.py runstack'." % application.layer_alias
        )
    return application
