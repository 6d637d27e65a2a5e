"""
The interface's WebSocket relay: ASGI WebSocket connections to channels.

The handshake goes to "websocket.connect"; a worker answers on the socket's
reply channel with websocket.accept or websocket.close (a refusal: 403).
Frames go to "websocket.receive", one at a time: frame n + 1 is read from the
client only once a worker acknowledged frame n (a websocket.ack, or "ack" on
its last websocket.send or websocket.close for frame n). That keeps a
socket's frames in order however many workers and threads serve them, with
no locks, and pushes back on a client that sends faster than it is served.
A frame whose acknowledgement never comes (its worker died) closes the socket
with 1011 after ack_timeout: a lost message never stalls a socket forever.

A full connect or receive channel makes the relay wait for room (for up to
CHANNEL_QUEUE_TIMEOUT), reading nothing more from that client meanwhile.
Failures close the socket with the RFC 6455 code that says why: 1009 for an
oversized frame, 1013 (try again later) when the receive channel stayed full,
1011 for a missing acknowledgement, 1000 after the idle timeout.
"""

import asyncio
import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from django_fork.channels.codecs import (
    websocket_connect_message,
    websocket_disconnect_message,
    websocket_receive_message,
)
from django_fork.channels.exceptions import ChannelError, ChannelFull
from django_fork.channels.messages import (
    WEBSOCKET_CONNECT_CHANNEL,
    WEBSOCKET_DISCONNECT_CHANNEL,
    WEBSOCKET_RECEIVE_CHANNEL,
    WEBSOCKET_SEND_PREFIX,
)

logger = logging.getLogger("django_fork.channels.interface")

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013


def origin_allowed(scope, allowed_origins=None):
    """
    Return whether the handshake's Origin header is allowed: its host must
    match allowed_origins (when given) or ALLOWED_HOSTS, with Django's host
    pattern rules. Clients that send no Origin (non-browsers) are allowed.
    """
    origin = None
    for name, value in scope.get("headers", ()):
        if name.lower() == b"origin":
            origin = value.decode("latin1")
    if origin is None:
        return True
    parts = urlsplit(origin)
    if not parts.scheme or not parts.hostname:
        return False
    if allowed_origins is not None:
        allowed = [
            o if o == "*" or "://" not in o else urlsplit(o).netloc
            for o in allowed_origins
        ]
    else:
        allowed = settings.ALLOWED_HOSTS
        if settings.DEBUG and not allowed:
            allowed = [".localhost", "127.0.0.1", "[::1]"]
    host, _ = split_domain_port(parts.netloc)
    return validate_host(host, allowed) or validate_host(parts.netloc, allowed)


class WebSocketRelay:
    """Relay one ASGI WebSocket connection; options come from interface."""

    def __init__(self, interface, scope, receive, send):
        self.interface = interface
        self.layer = interface.layer
        self.scope = scope
        self.receive = receive
        self.send = send
        self.connect = None
        self.seq = 0
        self.acked = 0
        self._ack = None
        self.closed = False

    async def run(self):
        message = await self.receive()
        if message["type"] != "websocket.connect":
            return
        interface = self.interface
        if not origin_allowed(self.scope, interface.websocket_allowed_origins):
            logger.warning("WebSocket to %s refused: Origin not allowed.", self.path)
            await self.send({"type": "websocket.close", "code": CLOSE_POLICY})
            return
        reply_channel = await self.layer.new_channel(WEBSOCKET_SEND_PREFIX)
        self.connect = websocket_connect_message(self.scope, reply_channel)
        try:
            await interface.sends.send(
                self.layer,
                WEBSOCKET_CONNECT_CHANNEL,
                self.connect,
                interface.queue_timeout,
                size=sum(len(n) + len(v) for n, v in self.scope.get("headers", ())),
            )
        except ChannelError as e:
            logger.warning("WebSocket to %s refused: %s", self.path, e)
            await self.refuse(503 if isinstance(e, ChannelFull) else e.status_code)
            return
        try:
            answer = await asyncio.wait_for(
                self.layer.receive(reply_channel), interface.timeout
            )
        except asyncio.TimeoutError:
            logger.warning("WebSocket to %s: no worker answered.", self.path)
            await self.refuse(504)
            return
        if answer.get("type") != "websocket.accept":
            # A close before accepting refuses the handshake with 403.
            await self.send({"type": "websocket.close", "code": CLOSE_POLICY})
            return
        await self.send(
            {
                "type": "websocket.accept",
                "subprotocol": answer.get("subprotocol"),
                "headers": answer.get("headers") or [],
            }
        )
        from_client = asyncio.ensure_future(self.relay_from_client())
        to_client = asyncio.ensure_future(self.relay_to_client())
        try:
            await asyncio.wait(
                (from_client, to_client), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (from_client, to_client):
                task.cancel()
            await asyncio.gather(from_client, to_client, return_exceptions=True)
            # What a broadcast still sends the socket, until a worker takes
            # it out of its groups, is dropped on arrival, and what waits
            # for it is freed now, not when it expires.
            await self.layer.discard_channel(self.connect["reply_channel"])

    @property
    def path(self):
        return self.scope.get("path", "")

    async def refuse(self, status):
        """Refuse the handshake with an HTTP status where the server can."""
        if "websocket.http.response" in self.scope.get("extensions", {}):
            body = b"%d\n" % status
            await self.send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await self.send({"type": "websocket.http.response.body", "body": body})
        else:
            await self.send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER})

    async def close(self, code):
        if not self.closed:
            self.closed = True
            await self.send({"type": "websocket.close", "code": code})

    async def relay_from_client(self):
        """Send client frames to workers, one acknowledged frame at a time."""
        interface = self.interface
        while True:
            try:
                message = await asyncio.wait_for(
                    self.receive(), interface.websocket_idle_timeout
                )
            except asyncio.TimeoutError:
                await self.close(CLOSE_NORMAL)
                await self.notify_disconnect(CLOSE_NORMAL)
                return
            if message["type"] == "websocket.disconnect":
                await self.notify_disconnect(message.get("code", CLOSE_GOING_AWAY))
                return
            if self.closed:
                # Frames the client sent before it saw the close go nowhere.
                continue
            text, data = message.get("text"), message.get("bytes")
            size = len(text.encode()) if text is not None else len(data or b"")
            if size > interface.websocket_max_frame_size:
                logger.warning(
                    "WebSocket to %s closed: a %d-byte frame is over the limit.",
                    self.path,
                    size,
                )
                await self.close(CLOSE_TOO_BIG)
                await self.notify_disconnect(CLOSE_TOO_BIG)
                return
            self.seq += 1
            self._ack = asyncio.get_running_loop().create_future()
            frame = websocket_receive_message(self.connect, self.seq, text, data)
            try:
                # While the channel is full, the next frame is not read: the
                # client's TCP window closes behind it.
                await interface.sends.send(
                    self.layer,
                    WEBSOCKET_RECEIVE_CHANNEL,
                    frame,
                    interface.queue_timeout,
                    size=size,
                )
            except ChannelError as e:
                logger.warning("WebSocket to %s closed: %s", self.path, e)
                await self.close(CLOSE_TRY_AGAIN_LATER)
                await self.notify_disconnect(CLOSE_TRY_AGAIN_LATER)
                return
            try:
                await asyncio.wait_for(self._ack, interface.websocket_ack_timeout)
            except asyncio.TimeoutError:
                logger.warning(
                    "WebSocket to %s closed: frame %d was never acknowledged.",
                    self.path,
                    self.seq,
                )
                await self.close(CLOSE_INTERNAL_ERROR)
                await self.notify_disconnect(CLOSE_INTERNAL_ERROR)
                return

    async def relay_to_client(self):
        """Relay what workers (and group sends) put on the reply channel."""
        reply_channel = self.connect["reply_channel"]
        while True:
            message = await self.layer.receive(reply_channel)
            message_type = message.get("type")
            if message_type == "websocket.send":
                text, data = message.get("text"), message.get("bytes")
                if isinstance(text, str):
                    await self.send({"type": "websocket.send", "text": text})
                elif isinstance(data, bytes):
                    await self.send({"type": "websocket.send", "bytes": data})
                # A worker's last frame for a client frame acknowledges it.
                if "ack" in message:
                    self.acknowledge(message["ack"])
            elif message_type == "websocket.ack":
                self.acknowledge(message.get("seq"))
            elif message_type == "websocket.close":
                code = message.get("code")
                await self.close(code if isinstance(code, int) else CLOSE_NORMAL)
                # A close that acknowledges a frame lets the other relay
                # direction read on, to the client's disconnect, which it
                # reports to the workers.
                if "ack" in message:
                    self.acknowledge(message["ack"])
                await asyncio.Future()

    def acknowledge(self, seq):
        """Let the next frame go: a worker finished frame seq."""
        if seq == self.seq and self._ack and not self._ack.done():
            self._ack.set_result(None)

    async def notify_disconnect(self, code):
        """
        Tell workers the socket closed, after its last frame. The notice is
        never dropped for capacity: it waits for room for as long as the
        socket's state (its group memberships, its channel session) lasts.
        """
        try:
            await self.interface.sends.send(
                self.layer,
                WEBSOCKET_DISCONNECT_CHANNEL,
                websocket_disconnect_message(self.connect, code, self.seq),
                self.layer.group_expiry,
                control=True,
            )
        except ChannelError as e:
            logger.warning("Lost the disconnect of a WebSocket: %s", e)
