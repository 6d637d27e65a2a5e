"""
The worker's side of WebSockets: route websocket.* events to consumers.

The event's path is resolved against the websocket_urlpatterns of
CHANNEL_ROUTING (the matches of recent paths are kept: a socket's frames
resolve its path once); a new consumer instance handles each event. After a
frame's consumer returns (or fails), the worker acknowledges the frame on
the socket's reply channel, after anything the consumer sent there: the
interface then sends the socket's next frame. The acknowledgement rides on
the consumer's last message to the socket ("ack": seq on it), which the
consumer held back for that: an echo costs one layer send, not two.
"""

import collections
import logging
import threading

from django.urls import Resolver404, URLResolver

from django_fork.channels.codecs import validate_websocket_message
from django_fork.channels.exceptions import InvalidMessage
from django_fork.channels.flow import send_control, send_control_sync

logger = logging.getLogger("django_fork.channels.websockets")

#: Paths whose route match a dispatcher keeps.
ROUTE_CACHE_SIZE = 1024


class WebSocketDispatcher:
    """
    Consume websocket.connect, websocket.receive, websocket.disconnect.

    When every WebSocket route is a sync consumer, the worker serves these
    channels in its receiving threads (serve_in_thread()): the consumer runs
    and replies in the thread that received the event, with the layer's
    sync methods, and no event loop on the way. Otherwise they are served on
    the worker's event loop (__call__()), sync consumers in its thread pool.
    """

    def __init__(self, worker, routing):
        self.worker = worker
        self.routing = routing
        # path -> ResolverMatch, the least recently used first.
        self._matches = collections.OrderedDict()
        self._matches_lock = threading.Lock()
        self.can_serve_in_thread = not any(
            consumer_class.is_async
            for consumer_class in _consumer_classes(routing.websocket_urlpatterns)
        )

    @property
    def layer(self):
        return self.worker.layer

    async def __call__(self, message):
        if not self.is_valid(message):
            return
        consumer = None
        try:
            consumer, refusal = self.prepare(message, self.worker.call_from_thread)
            if consumer is not None:
                try:
                    if consumer.is_async:
                        await consumer.handle()
                    else:
                        await self.worker.run_consumer(consumer.handle)
                except Exception:
                    refusal = self.consumer_failed(consumer, message)
            if refusal is not None:
                await self.reply(message, refusal)
        finally:
            if message["type"] == "websocket.receive":
                await self.reply(message, self.acknowledgement(message, consumer))

    def serve_in_thread(self, message):
        """__call__() in a worker's receiving thread, for sync consumers."""
        if not self.is_valid(message):
            return
        consumer = None
        try:
            consumer, refusal = self.prepare(message, None)
            if consumer is not None:
                try:
                    self.worker.run_consumer_here(consumer.handle)
                except Exception:
                    refusal = self.consumer_failed(consumer, message)
            if refusal is not None:
                self.reply_sync(message, refusal)
        finally:
            if message["type"] == "websocket.receive":
                self.reply_sync(message, self.acknowledgement(message, consumer))

    @staticmethod
    def is_valid(message):
        try:
            validate_websocket_message(message)
        except InvalidMessage as e:
            logger.warning("Dropped a malformed WebSocket message: %s", e)
            return False
        return True

    @staticmethod
    def acknowledgement(message, consumer):
        """Return what acknowledges a frame: the consumer's, or a bare ack."""
        if consumer is None:
            return {"type": "websocket.ack", "seq": message["seq"]}
        return consumer.acknowledgement()

    def resolve(self, path):
        """Return the route match of path; raise Resolver404 for none."""
        matches = self._matches
        # Receiving threads share the cache: one could evict the path
        # between another's get() and move_to_end().
        with self._matches_lock:
            match = matches.get(path)
            if match is not None:
                matches.move_to_end(path)
                return match
        match = self.routing.resolve_websocket(path)
        with self._matches_lock:
            matches[path] = match
            if len(matches) > ROUTE_CACHE_SIZE:
                matches.popitem(last=False)
        return match

    def prepare(self, message, run):
        """
        Return (the consumer instance for the event, what to answer the
        socket instead): (None, a refusal of the handshake) for a path with
        no route, (None, None) for a route that is not a consumer. run is
        how a sync consumer runs layer coroutines (None: in this thread,
        with the layer's sync methods).
        """
        try:
            match = self.resolve(message["path"])
        except Resolver404:
            logger.warning("No WebSocket consumer for %s.", message["path"])
            if message["type"] == "websocket.connect":
                return None, {"type": "websocket.close", "code": 1008}
            return None, None
        consumer_class = getattr(match.func, "consumer_class", None)
        if consumer_class is None:
            logger.error(
                "The WebSocket route for %s is not a consumer (use "
                "ConsumerClass.as_consumer()).",
                message["path"],
            )
            return None, None
        # A copy: the cached match outlives the consumer.
        kwargs = dict(match.kwargs)
        try:
            if consumer_class.is_async:
                consumer = consumer_class(message, self.layer, kwargs)
            else:
                consumer = consumer_class(message, self.layer, kwargs, run)
        except Exception:
            return None, self.consumer_failed(consumer_class, message)
        if message["type"] == "websocket.receive":
            consumer.ack_seq = message["seq"]
        return consumer, None

    @staticmethod
    def consumer_failed(consumer, message):
        """
        Log the exception a consumer (or its class) raised; return what to
        answer a handshake it failed on (None for other events).
        """
        consumer_class = consumer if isinstance(consumer, type) else type(consumer)
        logger.exception(
            "WebSocket consumer %s failed on %s.",
            consumer_class.__name__,
            message["type"],
        )
        if message["type"] == "websocket.connect":
            return {"type": "websocket.close", "code": 1011}
        return None

    async def reply(self, message, answer):
        """
        Answer on the socket's reply channel. The answer (an acknowledgement,
        an accept, a close) is a control message: it waits for room while a
        broadcast fills the channel, for as long as the interface would wait
        for it.
        """
        delivered = await send_control(
            self.layer, message["reply_channel"], answer, self.worker.stream_timeout
        )
        if not delivered:
            self.undelivered(message)

    def reply_sync(self, message, answer):
        """reply() from a receiving thread."""
        delivered = send_control_sync(
            self.layer, message["reply_channel"], answer, self.worker.stream_timeout
        )
        if not delivered:
            self.undelivered(message)

    @staticmethod
    def undelivered(message):
        logger.warning(
            "Could not answer a WebSocket event on %s: the channel stayed full.",
            message["reply_channel"],
        )


def _consumer_classes(patterns):
    """Yield the consumer class of each route in patterns, include()s too."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _consumer_classes(pattern.url_patterns)
        else:
            consumer_class = getattr(pattern.callback, "consumer_class", None)
            if consumer_class is not None:
                yield consumer_class
