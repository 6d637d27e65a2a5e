"""
The worker: takes messages off channels and runs their consumers.

A worker runs a fixed number of slots, one per thread of its pool. A slot
takes a message only when it is free to handle it, so a busy worker leaves
messages on the layer for idle ones. Sync consumers run in the thread pool,
async ones on the worker's event loop. A consumer that raises, or a message
that does not decode, is logged and dropped: the worker goes on.
"""

import asyncio
import importlib.util
import inspect
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections

from django_fork.channels.exceptions import ChannelFull, ChannelLayerUnavailable
from django_fork.channels.http import HttpConsumer
from django_fork.channels.messages import (
    HTTP_DISCONNECT_CHANNEL,
    HTTP_REQUEST_CHANNEL,
    WEBSOCKET_CONNECT_CHANNEL,
    WEBSOCKET_DISCONNECT_CHANNEL,
    WEBSOCKET_RECEIVE_CHANNEL,
)
from django_fork.channels.routing import Routing, select_channels
from django_fork.channels.websockets import WebSocketDispatcher

logger = logging.getLogger("django_fork.channels.worker")


def _with_fresh_connections(func, *args):
    close_old_connections()
    try:
        return func(*args)
    finally:
        close_old_connections()


def is_async(consumer):
    """Return whether consumer, a function or callable object, is async."""
    return inspect.iscoroutinefunction(consumer) or inspect.iscoroutinefunction(
        getattr(consumer, "__call__", None)
    )


def _has_tasks_framework():
    """
    Return whether a tasks framework is installed: Django's own (6.0+) or
    the django-tasks backport.
    """
    return any(
        importlib.util.find_spec(name) is not None
        for name in ("django.tasks", "django_tasks")
    )


async def ignore_message(message):
    """Consume a message nobody needs (http.disconnect by default)."""


class Worker:
    """Consume the routed channels of a channel layer."""

    def __init__(
        self,
        layer,
        routes=None,
        routing=None,
        threads=4,
        only_channels=None,
        exclude_channels=None,
        stream_timeout=60,
    ):
        self.layer = layer
        self.threads = threads
        self.stream_timeout = stream_timeout
        if routing is None:
            routing = Routing.from_setting() if routes is None else Routing(routes)
        self.routing = routing
        self.routes = {
            HTTP_REQUEST_CHANNEL: HttpConsumer(self),
            HTTP_DISCONNECT_CHANNEL: ignore_message,
        }
        if routing.websocket_urlpatterns:
            dispatcher = WebSocketDispatcher(self, routing)
            for channel in (
                WEBSOCKET_CONNECT_CHANNEL,
                WEBSOCKET_RECEIVE_CHANNEL,
                WEBSOCKET_DISCONNECT_CHANNEL,
            ):
                self.routes[channel] = dispatcher
        if _has_tasks_framework():
            from django_fork.channels.task_backend import get_task_routes

            self.routes.update(get_task_routes())
        self.routes.update(routing.channel_routes)
        self.channels = select_channels(
            list(self.routes), only_channels, exclude_channels
        )
        # channel -> (consumer, whether it is async), checked once per
        # consumer set in routes.
        self._kinds = {}
        self._slots = []
        self._receiving = set()
        self._stopping = False
        self.loop = None
        self.executor = None
        self.handled = 0

    async def run(self):
        """Serve until stop() is called, then finish in-flight work."""
        if not self.channels:
            raise ValueError("The worker has no channels to listen on.")
        self.loop = asyncio.get_running_loop()
        self.executor = ThreadPoolExecutor(
            self.threads, thread_name_prefix="django-fork-worker"
        )
        logger.info(
            "Worker listening on %s with %d threads.",
            ", ".join(self.channels),
            self.threads,
        )
        self._slots = [asyncio.ensure_future(self._slot()) for _ in range(self.threads)]
        try:
            await asyncio.gather(*self._slots)
        finally:
            self.executor.shutdown(wait=True)

    async def run_while(self, main):
        """
        Serve while awaiting main (a server's coroutine, say), then stop and
        finish in-flight work.
        """
        task = asyncio.ensure_future(self.run())
        try:
            await main
        finally:
            self.stop()
            await task

    def stop(self):
        """
        Take no new messages; let each slot finish what it is handling.
        Receives in progress are cancelled, which loses no message.
        """
        self._stopping = True
        for task in list(self._receiving):
            task.cancel()

    async def _slot(self):
        task = asyncio.current_task()
        backoff = 0.1
        while not self._stopping:
            self._receiving.add(task)
            try:
                channel, message = await self.layer.receive_any(self.channels)
            except asyncio.CancelledError:
                if self._stopping:
                    return
                raise
            except ChannelLayerUnavailable as e:
                logger.warning("Channel layer unavailable (%s); retrying.", e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5)
                continue
            finally:
                self._receiving.discard(task)
            backoff = 0.1
            await self.dispatch(channel, message)

    async def dispatch(self, channel, message):
        """Run channel's consumer on message; log and drop any failure."""
        consumer = self.routes[channel]
        kind = self._kinds.get(channel)
        if kind is None or kind[0] is not consumer:
            kind = self._kinds[channel] = (consumer, is_async(consumer))
        try:
            if kind[1]:
                await consumer(message)
            else:
                await self.run_consumer(consumer, message)
        except Exception:
            self.consumer_failed(channel, message)
        finally:
            self.handled += 1
            try:
                await self.layer.ack(channel, message)
            except Exception:
                logger.exception("Could not acknowledge a message on %r.", channel)

    def consumer_failed(self, channel, message):
        """
        Handle the exception a consumer raised (sys.exc_info() holds it): log
        it. The message is dropped either way.
        """
        logger.exception(
            "Consumer for channel %r failed on a %r message; dropped.",
            channel,
            message.get("type"),
        )

    # Helpers for consumers.

    async def run_consumer(self, func, *args):
        """
        Run a sync consumer in the thread pool, closing the thread's stale
        database connections before and after, as request_started and
        request_finished do for views.
        """
        return await self.run_sync(_with_fresh_connections, func, *args)

    async def run_sync(self, func, *args):
        """Run func in the worker's thread pool and return its result."""
        return await self.loop.run_in_executor(self.executor, func, *args)

    def call_from_thread(self, coroutine):
        """From a worker thread, run coroutine on the worker's loop; wait."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    async def send_stream(self, channel, message):
        """
        Send to a single-reader stream channel, waiting while it is full:
        the reader drains it as the client takes the data. Raise ChannelFull
        if it stays full for stream_timeout seconds.
        """
        deadline = None
        delay = 0.001
        while True:
            try:
                return await self.layer.send(channel, message)
            except ChannelFull:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.stream_timeout
                elif now > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
