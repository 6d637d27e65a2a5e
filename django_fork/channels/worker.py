"""
The worker: takes messages off channels and runs their consumers.

A worker runs a fixed number of slots, one per thread of its pool. A slot
takes a message only when it is free to handle it, so a busy worker leaves
messages on the layer for idle ones. A consumer that raises, or a message
that does not decode, is logged and dropped: the worker goes on.

Sync consumers and Django's views (and WebSocket events, when every
WebSocket consumer is sync) are served by threads that take their next
message with the layer's blocking receive, run the consumer and send the
reply from the same thread, with no event loop on the way, when the layer
can block on their channels (can_receive_sync()): a hand-off between
the event loop and a thread costs a context switch or two each way, about
as much as the view itself. The event loop runs the async consumers, the
parts of a request that are async by nature (a body in chunks, a streamed
response's flow control) and, on a layer that cannot block, every channel,
with sync consumers in its thread pool.
"""

import asyncio
import importlib.util
import inspect
import logging
import threading
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

#: Seconds a receiving thread waits for a message before it looks whether
#: the worker is stopping: how long stop() takes at most to reach an idle
#: thread.
RECEIVE_TIMEOUT = 0.5


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


def _resolve(future):
    if not future.done():
        future.set_result(None)


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
        self._stopped = threading.Event()
        self._handled_lock = threading.Lock()
        #: The channels that the receiving threads serve, and the rest,
        #: served on the event loop (set by run()).
        self.thread_channels = []
        self.loop_channels = list(self.channels)
        self.loop = None
        self.executor = None
        self.handled = 0

    def split_channels(self):
        """
        Return (the channels for receiving threads, those for the event
        loop): a channel goes to the threads when its consumer is sync (or
        serves from a thread, as HttpConsumer does) and the layer can block
        on it.
        """
        threaded = [
            channel
            for channel in self.channels
            if (
                getattr(self.routes[channel], "can_serve_in_thread", True)
                and hasattr(self.routes[channel], "serve_in_thread")
                or not is_async(self.routes[channel])
            )
            and self.layer.can_receive_sync([channel])
        ]
        if not threaded or not self.layer.can_receive_sync(threaded):
            return [], list(self.channels)
        return threaded, [c for c in self.channels if c not in threaded]

    async def run(self):
        """Serve until stop() is called, then finish in-flight work."""
        if not self.channels:
            raise ValueError("The worker has no channels to listen on.")
        self.loop = asyncio.get_running_loop()
        self.executor = ThreadPoolExecutor(
            self.threads, thread_name_prefix="django-fork-worker"
        )
        self.thread_channels, self.loop_channels = self.split_channels()
        logger.info(
            "Worker listening on %s with %d threads.",
            ", ".join(self.channels),
            self.threads,
        )
        self._slots = []
        if self.thread_channels:
            self._slots += [
                self._start_receiver(number) for number in range(self.threads)
            ]
        if self.loop_channels:
            self._slots += [
                asyncio.ensure_future(self._slot(self.loop_channels))
                for _ in range(self.threads)
            ]
        try:
            await asyncio.gather(*self._slots)
        finally:
            # The receiving threads see _stopping at their next turn, and
            # finish the message they serve first.
            self.stop()
            await asyncio.gather(*self._slots, return_exceptions=True)
            self.executor.shutdown(wait=True)

    def _start_receiver(self, number):
        """
        Start a receiving thread; return a future of the loop done when it
        ends. The thread is a daemon, as the threads that serve requests in
        Django's runserver are: a process that exits without stop() (the
        autoreloader's restart) does not wait for its receives.
        """
        done = self.loop.create_future()

        def receive():
            try:
                self._receive_in_thread()
            finally:
                try:
                    self.loop.call_soon_threadsafe(_resolve, done)
                except RuntimeError:
                    # The loop closed first.
                    pass

        threading.Thread(
            target=receive, name="django-fork-worker-recv_%d" % number, daemon=True
        ).start()
        return done

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
        self._stopped.set()
        for task in list(self._receiving):
            task.cancel()

    def _receive_in_thread(self):
        """
        Take messages of thread_channels with the layer's blocking receive
        and serve each in this thread, until stop().
        """
        backoff = 0.1
        while not self._stopping:
            try:
                channel, message = self.layer.receive_any_sync(
                    self.thread_channels, timeout=RECEIVE_TIMEOUT
                )
            except TimeoutError:
                continue
            except ChannelLayerUnavailable as e:
                logger.warning("Channel layer unavailable (%s); retrying.", e)
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, 5)
                continue
            except Exception:
                # A bug must not end the thread's receives for good.
                logger.exception("Receive from the channel layer failed.")
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, 5)
                continue
            backoff = 0.1
            self.dispatch_in_thread(channel, message)

    def dispatch_in_thread(self, channel, message):
        """dispatch() in a receiving thread: run a sync consumer here."""
        consumer = self.routes[channel]
        try:
            serve = getattr(consumer, "serve_in_thread", None)
            if serve is not None:
                serve(message)
            else:
                _with_fresh_connections(consumer, message)
        except Exception:
            self.consumer_failed(channel, message)
        finally:
            with self._handled_lock:
                self.handled += 1
            try:
                self.layer.ack_sync(channel, message)
            except Exception:
                logger.exception("Could not acknowledge a message on %r.", channel)

    async def _slot(self, channels):
        task = asyncio.current_task()
        backoff = 0.1
        while not self._stopping:
            self._receiving.add(task)
            try:
                channel, message = await self.layer.receive_any(channels)
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
            with self._handled_lock:
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

    def run_consumer_here(self, func, *args):
        """run_consumer() in this thread, a receiving thread."""
        return _with_fresh_connections(func, *args)

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
