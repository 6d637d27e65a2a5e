"""
A worker that runs in the caller's event loop, one message at a time.

The test client and ChannelTestCase.consume() run messages through it: the
worker's own dispatch, its HttpConsumer and the CHANNEL_ROUTING consumers,
without a thread pool. Sync consumers and views run thread-sensitively, in the
thread that runs the test, as Django's AsyncClient runs sync views: that
thread's database connection holds a TestCase's transaction, and its
thread-locals (the active language, the URLconf) are the ones the test sees.
"""

import asyncio
import contextlib
import sys
import threading

from asgiref.sync import sync_to_async
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from django_fork.channels.http import HttpConsumer
from django_fork.channels.messages import HTTP_REQUEST_CHANNEL
from django_fork.channels.worker import Worker

__all__ = ["InProcessWorker", "keep_test_connections"]


_keeping = 0
_keeping_lock = threading.Lock()


@contextlib.contextmanager
def keep_test_connections():
    """
    Stop request_started and request_finished from closing database
    connections, as django.test.Client does around each request: a test's
    connection lives on in a transaction across requests. Nested and
    concurrent uses reconnect close_old_connections only when the last ends.
    """
    global _keeping
    with _keeping_lock:
        if not _keeping:
            request_started.disconnect(close_old_connections)
            request_finished.disconnect(close_old_connections)
        _keeping += 1
    try:
        yield
    finally:
        with _keeping_lock:
            _keeping -= 1
            if not _keeping:
                request_started.connect(close_old_connections)
                request_finished.connect(close_old_connections)


class _HandlerHttpConsumer(HttpConsumer):
    """An HttpConsumer that serves requests with a given ChannelHandler."""

    def __init__(self, worker, handler):
        super().__init__(worker)
        self._given_handler = handler

    @property
    def handler(self):
        return self._given_handler


class InProcessWorker(Worker):
    """
    Dispatch messages in the running event loop, recording what consumers
    raise instead of only logging it.

    handler, if given, is the ChannelHandler that serves http.request (unless
    CHANNEL_ROUTING routes http.request to a consumer of its own).
    """

    def __init__(self, layer, handler=None, log_failures=False, **options):
        super().__init__(layer, **options)
        self.log_failures = log_failures
        #: sys.exc_info() of the last consumer that raised, else None.
        self.exc_info = None
        if handler is not None and type(self.routes[HTTP_REQUEST_CHANNEL]) is (
            HttpConsumer
        ):
            self.routes[HTTP_REQUEST_CHANNEL] = _HandlerHttpConsumer(self, handler)

    async def run_message(self, channel, message):
        """Run channel's consumer on message; return what it raised."""
        self.loop = asyncio.get_running_loop()
        self.exc_info = None
        await self.dispatch(channel, message)
        return self.exc_info

    def consumer_failed(self, channel, message):
        self.exc_info = sys.exc_info()
        if self.log_failures:
            super().consumer_failed(channel, message)

    async def run_sync(self, func, *args):
        return await sync_to_async(func, thread_sensitive=True)(*args)

    async def run_consumer(self, func, *args):
        # Unlike a worker's, the test's thread keeps its database connection
        # (and TestCase's transaction) across consumers.
        return await self.run_sync(func, *args)
