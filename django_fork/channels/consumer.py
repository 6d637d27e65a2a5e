"""
WebSocket consumer classes: what views are to HTTP.

A consumer is instantiated for each event of a socket (connect, each frame,
disconnect), possibly on a different worker each time, so it keeps no state
on self between events: keep it in the channel session, the database, or
the client. Handlers are looked up by event type: websocket.receive calls
websocket_receive(), which calls receive().

Route consumers with ``ConsumerClass.as_consumer()`` in the
websocket_urlpatterns of the CHANNEL_ROUTING module. Sync consumers run in a
worker thread and may use the ORM freely; async consumers run on the
worker's event loop.
"""

import json

from asgiref.sync import sync_to_async
from django.utils.functional import classproperty

__all__ = [
    "AsyncJsonWebsocketConsumer",
    "AsyncWebsocketConsumer",
    "JsonWebsocketConsumer",
    "WebsocketConsumer",
]


class _ConsumerBase:
    #: Groups the socket joins on connect and leaves on disconnect.
    groups = ()
    #: Set by the session decorators of django_fork.contrib.sessions.channel.
    use_channel_session = False
    use_http_session = False
    channel_session = None
    http_session = None
    user = None

    def __init__(self, message, channel_layer, kwargs=None, run=None):
        self.message = message
        self.scope = message
        self.reply_channel = message["reply_channel"]
        self.channel_layer = channel_layer
        self.kwargs = kwargs or {}
        # For sync consumers: run a layer coroutine on the worker's loop from
        # this worker thread and return its result.
        self._run = run

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
        from django_fork.contrib.sessions import channel as sessions

        if self.use_channel_session:
            self.channel_session = sessions.load_channel_session(self.reply_channel)
        if self.use_http_session:
            self.http_session = sessions.load_http_session(
                self.message, self.channel_session
            )
            self.user = sessions.load_user(self.http_session)

    def save_sessions(self):
        """Save the channel session; delete it once the socket is gone."""
        if self.channel_session is None:
            return
        if self.message["type"] == "websocket.disconnect":
            self.channel_session.delete()
        elif self.channel_session.modified:
            self.channel_session.save()
            # Saved once (at accept) is enough: a second save after the
            # handler would overwrite what later frames, on other workers,
            # have stored since.
            self.channel_session.modified = False


class WebsocketConsumer(_ConsumerBase):
    """A WebSocket consumer whose handlers are plain (sync) methods."""

    def handle(self):
        """Run the handler of this event's type."""
        self.load_sessions()
        getattr(self, self.handler_name())(self.message)
        self.save_sessions()

    def websocket_connect(self, message):
        for group in self.groups:
            self._run(self.channel_layer.group_add(group, self.reply_channel))
        self.connect()

    def connect(self):
        """Called on the handshake: accept() it, or close() to refuse it."""
        self.accept()

    def websocket_receive(self, message):
        # Renew group memberships: they lapse after the layer's group_expiry
        # unless renewed, which drops sockets that vanished without a
        # disconnect but must not drop live ones.
        for group in self.groups:
            self._run(self.channel_layer.group_add(group, self.reply_channel))
        self.receive(text_data=message.get("text"), bytes_data=message.get("bytes"))

    def receive(self, text_data=None, bytes_data=None):
        """Called for each frame from the client, in order."""

    def websocket_disconnect(self, message):
        for group in self.groups:
            self._run(self.channel_layer.group_discard(group, self.reply_channel))
        self.disconnect(message["code"])

    def disconnect(self, code):
        """Called once the socket has closed."""

    def accept(self, subprotocol=None, headers=None):
        # Frames may arrive at other workers as soon as the client sees the
        # accept: the channel session must be saved before.
        self.save_sessions()
        message = {"type": "websocket.accept", "subprotocol": subprotocol}
        if headers:
            message["headers"] = [list(header) for header in headers]
        self._run(self.channel_layer.send(self.reply_channel, message))

    def send(self, text_data=None, bytes_data=None, close=False):
        """Send a frame (text or bytes) to this socket's client."""
        frame = _frame(text_data, bytes_data)
        self._run(self.channel_layer.send(self.reply_channel, frame))
        if close:
            self.close(close if isinstance(close, int) else None)

    def close(self, code=None, reason=None):
        """Close the socket; before accept(), refuse the handshake (403)."""
        message = {"type": "websocket.close", "code": code or 1000}
        if reason:
            message["reason"] = reason
        self._run(self.channel_layer.send(self.reply_channel, message))

    def group_send(self, group, text_data=None, bytes_data=None):
        """Send a frame to every socket in group."""
        frame = _frame(text_data, bytes_data)
        self._run(self.channel_layer.group_send(group, frame))


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
        if sessions:
            await sync_to_async(self.load_sessions)()
        await getattr(self, self.handler_name())(self.message)
        if sessions:
            await sync_to_async(self.save_sessions)()

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

    async def accept(self, subprotocol=None, headers=None):
        if self.channel_session is not None:
            await sync_to_async(self.save_sessions)()
        message = {"type": "websocket.accept", "subprotocol": subprotocol}
        if headers:
            message["headers"] = [list(header) for header in headers]
        await self.channel_layer.send(self.reply_channel, message)

    async def send(self, text_data=None, bytes_data=None, close=False):
        frame = _frame(text_data, bytes_data)
        await self.channel_layer.send(self.reply_channel, frame)
        if close:
            await self.close(close if isinstance(close, int) else None)

    async def close(self, code=None, reason=None):
        message = {"type": "websocket.close", "code": code or 1000}
        if reason:
            message["reason"] = reason
        await self.channel_layer.send(self.reply_channel, message)

    async def group_send(self, group, text_data=None, bytes_data=None):
        await self.channel_layer.group_send(group, _frame(text_data, bytes_data))


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
