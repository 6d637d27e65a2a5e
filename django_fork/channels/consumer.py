"""
WebSocket consumer classes: what views are to HTTP.

A consumer is instantiated for each event of a socket (connect, each frame,
disconnect), possibly on a different worker each time, so it keeps no state
on self between events: keep it in the channel session, the database, or
the client. Handlers are looked up by event type: websocket.receive calls
websocket_receive(), which calls receive().

While a consumer handles a frame, its last message to its own socket (a
frame sent with send(), or close()) is held back until it returns: the
worker sends it with the frame's acknowledgement on it, one layer send
instead of two. Anything sent after it (another send(), a group_send(),
an accept()) sends it first, so the socket's messages keep their order;
send to the socket with these methods, not with channel_layer.send().

Route consumers with ``ConsumerClass.as_consumer()`` in the
websocket_urlpatterns of the CHANNEL_ROUTING module. Sync consumers run in a
worker thread and may use the ORM freely; async consumers run on the
worker's event loop.
"""

import json
import logging

from asgiref.sync import sync_to_async
from django.contrib.sessions.exceptions import SessionInterrupted
from django.utils.functional import classproperty

__all__ = [
    "AsyncJsonWebsocketConsumer",
    "AsyncWebsocketConsumer",
    "JsonWebsocketConsumer",
    "WebsocketConsumer",
]

logger = logging.getLogger("django_fork.channels.consumer")

# The server lost state the socket needs (RFC 6455, section 7.4.1).
CLOSE_INTERNAL_ERROR = 1011


class _ConsumerBase:
    #: Groups the socket joins on connect and leaves on disconnect.
    groups = ()
    #: Set by the session decorators of django_fork.contrib.sessions.channel.
    use_channel_session = False
    use_http_session = False
    #: The event's MessageSessions, when the class asked for sessions.
    sessions = None
    channel_session = None
    http_session = None
    user = None
    #: The seq of the frame this instance handles, set by the worker: the
    #: consumer holds its last message to its socket for acknowledgement().
    ack_seq = None
    _held = None

    def __init__(self, message, channel_layer, kwargs=None, run=None):
        self.message = message
        self.scope = message
        self.reply_channel = message["reply_channel"]
        self.channel_layer = channel_layer
        self.kwargs = kwargs or {}
        # For a sync consumer served from the worker's thread pool: run a
        # layer coroutine on the worker's loop and return its result. None
        # for one served in a receiving thread: it calls the layer's sync
        # methods (_layer_call()).
        self._run = run

    def _hold(self, message):
        """
        Return what to send to the socket now that message is to go: while
        a frame is handled, the message held so far (None: nothing) and
        message is held instead.
        """
        if self.ack_seq is None:
            return message
        held, self._held = self._held, message
        return held

    def _take_held(self):
        held, self._held = self._held, None
        return held

    def acknowledgement(self):
        """
        Return the message that acknowledges frame ack_seq: the held
        message with "ack" set to it, or a websocket.ack.
        """
        held = self._take_held()
        if held is None:
            return {"type": "websocket.ack", "seq": self.ack_seq}
        return {**held, "ack": self.ack_seq}

    @classmethod
    def as_consumer(cls, **initkwargs):
        """Return a routing entry (usable in path()) for this consumer."""
        for key in initkwargs:
            if not hasattr(cls, key):
                raise TypeError(
                    "%s() received an invalid keyword %r." % (cls.__name__, key)
                )

        def consumer(*args, **kwargs):
            raise TypeError(
                "%s is a WebSocket consumer; route it in websocket_urlpatterns."
                % cls.__name__
            )

        consumer.consumer_class = cls
        consumer.initkwargs = initkwargs
        consumer.__name__ = cls.__name__
        return consumer

    @classproperty
    def is_async(cls):
        return issubclass(cls, AsyncWebsocketConsumer)

    def handler_name(self):
        return self.message["type"].replace(".", "_")

    def load_sessions(self):
        """Load the sessions the class asked for (see the decorators)."""
        if not (self.use_channel_session or self.use_http_session):
            return
        from django_fork.contrib.sessions.channel import MessageSessions

        self.sessions = MessageSessions(
            self.message, self.use_channel_session, self.use_http_session
        )
        self.channel_session = self.sessions.channel_session
        self.http_session = self.sessions.http_session
        self.user = self.sessions.user

    def save_sessions(self):
        """Save the sessions, as SessionMiddleware does after a response."""
        if self.sessions is not None:
            self.sessions.save()

    def session_interrupted(self, exception):
        """Log that the socket's session is gone; return whether to close."""
        event = self.message["type"]
        closing = event != "websocket.disconnect"
        logger.warning(
            "WebSocket to %s%s on %s: %s",
            self.message["path"],
            " closed (1011)" if closing else "",
            event,
            exception,
        )
        return closing


class WebsocketConsumer(_ConsumerBase):
    """A WebSocket consumer whose handlers are plain (sync) methods."""

    def _layer_call(self, name, *args):
        """
        Return the layer's name(*args): the sync method in a receiving
        thread, the coroutine run on the worker's loop otherwise.
        """
        layer = self.channel_layer
        if self._run is None:
            return getattr(layer, name + "_sync")(*args)
        return self._run(getattr(layer, name)(*args))

    def handle(self):
        """Run the handler of this event's type."""
        try:
            self.load_sessions()
            getattr(self, self.handler_name())(self.message)
            self.save_sessions()
        except SessionInterrupted as e:
            if self.session_interrupted(e):
                self.close(CLOSE_INTERNAL_ERROR)

    def websocket_connect(self, message):
        for group in self.groups:
            self.group_add(group)
        self.connect()

    def connect(self):
        """Called on the handshake: accept() it, or close() to refuse it."""
        self.accept()

    def websocket_receive(self, message):
        # Renew group memberships: they lapse after the layer's group_expiry
        # unless renewed, which drops sockets that vanished without a
        # disconnect but must not drop live ones.
        for group in self.groups:
            self.group_add(group)
        self.receive(text_data=message.get("text"), bytes_data=message.get("bytes"))

    def receive(self, text_data=None, bytes_data=None):
        """Called for each frame from the client, in order."""

    def websocket_disconnect(self, message):
        for group in self.groups:
            self.group_discard(group)
        self.disconnect(message["code"])

    def disconnect(self, code):
        """Called once the socket has closed."""

    def _send_own(self, message):
        message = self._hold(message)
        if message is not None:
            self._layer_call("send", self.reply_channel, message)

    def _release(self):
        """Send the held message: what comes next must not overtake it."""
        held = self._take_held()
        if held is not None:
            self._layer_call("send", self.reply_channel, held)

    def accept(self, subprotocol=None, headers=None):
        # Frames may arrive at other workers as soon as the client sees the
        # accept: the sessions must be saved before.
        if self.sessions is not None:
            self.sessions.accept()
        message = {"type": "websocket.accept", "subprotocol": subprotocol}
        if headers:
            message["headers"] = [list(header) for header in headers]
        self._release()
        self._layer_call("send", self.reply_channel, message)

    def send(self, text_data=None, bytes_data=None, close=False):
        """Send a frame (text or bytes) to this socket's client."""
        self._send_own(_frame(text_data, bytes_data))
        if close:
            self.close(close if isinstance(close, int) else None)

    def close(self, code=None, reason=None):
        """Close the socket; before accept(), refuse the handshake (403)."""
        message = {"type": "websocket.close", "code": code or 1000}
        if reason:
            message["reason"] = reason
        self._send_own(message)

    def group_send(self, group, text_data=None, bytes_data=None):
        """Send a frame to every socket in group."""
        frame = _frame(text_data, bytes_data)
        self._release()
        self._layer_call("group_send", group, frame)

    def group_add(self, group):
        """Add this socket to group (or renew its membership)."""
        self._layer_call("group_add", group, self.reply_channel)

    def group_discard(self, group):
        """Take this socket out of group."""
        self._layer_call("group_discard", group, self.reply_channel)


class JsonWebsocketConsumer(WebsocketConsumer):
    """A sync consumer that exchanges JSON text frames."""

    def receive(self, text_data=None, bytes_data=None):
        if text_data is None:
            raise ValueError("%s received a bytes frame." % type(self).__name__)
        self.receive_json(json.loads(text_data))

    def receive_json(self, content):
        """Called with each decoded JSON frame."""

    def send_json(self, content, close=False):
        self.send(text_data=json.dumps(content), close=close)


class AsyncWebsocketConsumer(_ConsumerBase):
    """A WebSocket consumer whose handlers are coroutines."""

    async def handle(self):
        sessions = self.use_channel_session or self.use_http_session
        try:
            if sessions:
                await sync_to_async(self.load_sessions)()
            await getattr(self, self.handler_name())(self.message)
            if sessions:
                await sync_to_async(self.save_sessions)()
        except SessionInterrupted as e:
            if self.session_interrupted(e):
                await self.close(CLOSE_INTERNAL_ERROR)

    async def websocket_connect(self, message):
        for group in self.groups:
            await self.channel_layer.group_add(group, self.reply_channel)
        await self.connect()

    async def connect(self):
        await self.accept()

    async def websocket_receive(self, message):
        for group in self.groups:
            await self.channel_layer.group_add(group, self.reply_channel)
        await self.receive(
            text_data=message.get("text"), bytes_data=message.get("bytes")
        )

    async def receive(self, text_data=None, bytes_data=None):
        pass

    async def websocket_disconnect(self, message):
        for group in self.groups:
            await self.channel_layer.group_discard(group, self.reply_channel)
        await self.disconnect(message["code"])

    async def disconnect(self, code):
        pass

    async def _send_own(self, message):
        message = self._hold(message)
        if message is not None:
            await self.channel_layer.send(self.reply_channel, message)

    async def _release(self):
        held = self._take_held()
        if held is not None:
            await self.channel_layer.send(self.reply_channel, held)

    async def accept(self, subprotocol=None, headers=None):
        if self.sessions is not None:
            await sync_to_async(self.sessions.accept)()
        message = {"type": "websocket.accept", "subprotocol": subprotocol}
        if headers:
            message["headers"] = [list(header) for header in headers]
        await self._release()
        await self.channel_layer.send(self.reply_channel, message)

    async def send(self, text_data=None, bytes_data=None, close=False):
        await self._send_own(_frame(text_data, bytes_data))
        if close:
            await self.close(close if isinstance(close, int) else None)

    async def close(self, code=None, reason=None):
        message = {"type": "websocket.close", "code": code or 1000}
        if reason:
            message["reason"] = reason
        await self._send_own(message)

    async def group_send(self, group, text_data=None, bytes_data=None):
        frame = _frame(text_data, bytes_data)
        await self._release()
        await self.channel_layer.group_send(group, frame)

    async def group_add(self, group):
        await self.channel_layer.group_add(group, self.reply_channel)

    async def group_discard(self, group):
        await self.channel_layer.group_discard(group, self.reply_channel)


class AsyncJsonWebsocketConsumer(AsyncWebsocketConsumer):
    """An async consumer that exchanges JSON text frames."""

    async def receive(self, text_data=None, bytes_data=None):
        if text_data is None:
            raise ValueError("%s received a bytes frame." % type(self).__name__)
        await self.receive_json(json.loads(text_data))

    async def receive_json(self, content):
        pass

    async def send_json(self, content, close=False):
        await self.send(text_data=json.dumps(content), close=close)


def _frame(text_data, bytes_data):
    if (text_data is None) == (bytes_data is None):
        raise ValueError("Send exactly one of text_data and bytes_data.")
    if text_data is not None:
        return {"type": "websocket.send", "text": text_data}
    return {"type": "websocket.send", "bytes": bytes_data}
