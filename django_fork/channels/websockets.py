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

from django.urls import Resolver404

from django_fork.channels.codecs import validate_websocket_message
from django_fork.channels.exceptions import InvalidMessage
from django_fork.channels.flow import send_control

logger = logging.getLogger("django_fork.channels.websockets")

#: Paths whose route match a dispatcher keeps.
ROUTE_CACHE_SIZE = 1024


class WebSocketDispatcher:
    """Consume websocket.connect, websocket.receive, websocket.disconnect."""

    def __init__(self, worker, routing):
        self.worker = worker
        self.routing = routing
        # path -> ResolverMatch, the least recently used first.
        self._matches = collections.OrderedDict()

    @property
    def layer(self):
        return self.worker.layer

    async def __call__(self, message):
        try:
            validate_websocket_message(message)
        except InvalidMessage as e:
            logger.warning("Dropped a malformed WebSocket message: %s", e)
            return
        consumer = None
        try:
            consumer = await self.dispatch(message)
        finally:
            if message["type"] == "websocket.receive":
                if consumer is None:
                    answer = {"type": "websocket.ack", "seq": message["seq"]}
                else:
                    answer = consumer.acknowledgement()
                await self.reply(message, answer)

    def resolve(self, path):
        """Return the route match of path; raise Resolver404 for none."""
        matches = self._matches
        match = matches.get(path)
        if match is not None:
            matches.move_to_end(path)
            return match
        match = self.routing.resolve_websocket(path)
        matches[path] = match
        if len(matches) > ROUTE_CACHE_SIZE:
            matches.popitem(last=False)
        return match

    async def dispatch(self, message):
        """
        Run the event's consumer; return the instance (None: there was
        none), which holds its last message to the socket for a frame.
        """
        try:
            match = self.resolve(message["path"])
        except Resolver404:
            logger.warning("No WebSocket consumer for %s.", message["path"])
            if message["type"] == "websocket.connect":
                await self.reply(message, {"type": "websocket.close", "code": 1008})
            return
        consumer_class = getattr(match.func, "consumer_class", None)
        if consumer_class is None:
            logger.error(
                "The WebSocket route for %s is not a consumer (use "
                "ConsumerClass.as_consumer()).",
                message["path"],
            )
            return
        consumer = None
        # A copy: the cached match outlives the consumer.
        kwargs = dict(match.kwargs)
        try:
            if consumer_class.is_async:
                consumer = consumer_class(message, self.layer, kwargs)
            else:
                consumer = consumer_class(
                    message, self.layer, kwargs, self.worker.call_from_thread
                )
            if message["type"] == "websocket.receive":
                consumer.ack_seq = message["seq"]
            if consumer_class.is_async:
                await consumer.handle()
            else:
                await self.worker.run_consumer(consumer.handle)
        except Exception:
            logger.exception(
                "WebSocket consumer %s failed on %s.",
                consumer_class.__name__,
                message["type"],
            )
            if message["type"] == "websocket.connect":
                await self.reply(message, {"type": "websocket.close", "code": 1011})
        return consumer

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
            logger.warning(
                "Could not answer a WebSocket event on %s: the channel stayed full.",
                message["reply_channel"],
            )
