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

The two halves of an exchange have modules of their own: the request body
interface_body, the response interface_response.
"""

import asyncio
import logging
import time

import django
from django.conf import settings

from django_fork.channels.codecs import DEFAULT_CHUNK_SIZE, request_message
from django_fork.channels.exceptions import ChannelError, ChannelFull, ReplyTimeout
from django_fork.channels.flow import SendQueue
from django_fork.channels.interface_body import (
    ClientDisconnected,
    RequestBodyMixin,
    declared_length,
)
from django_fork.channels.interface_response import ResponseRelayMixin, ResponseState
from django_fork.channels.layers import channel_layers
from django_fork.channels.layers.inmemory import InMemoryChannelLayer
from django_fork.channels.messages import (
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


class InterfaceApplication(RequestBodyMixin, ResponseRelayMixin):
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
        response = ResponseState()
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
