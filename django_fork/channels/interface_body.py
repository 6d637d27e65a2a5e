"""
How the interface takes in a request body: the whole of it, before a worker
is involved (the first chunk in memory, the rest spooled to a temporary
file), then, once a worker has the request, the rest of it in chunk messages
on the request's body channel, waiting while the worker catches up.
"""

import asyncio
import tempfile
import time

from django.conf import settings

from django_fork.channels.codecs import request_body_message
from django_fork.channels.exceptions import (
    ChannelError,
    ChannelFull,
    MessageTooLarge,
    ReplyTimeout,
)

__all__ = [
    "ClientDisconnected",
    "RequestBodyMixin",
    "RequestTimeout",
    "declared_length",
]


class ClientDisconnected(Exception):
    """The HTTP client went away."""


class RequestTimeout(ChannelError):
    """The request body stopped arriving."""

    status_code = 408


def declared_length(scope):
    """Return the request's Content-Length, or None when absent or invalid."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class Body:
    """
    A request body the interface took in: its first chunk in memory, the
    rest (more is true) in a temporary file.
    """

    def __init__(self):
        self.first = None
        self.spool = None
        self.more = False

    def close(self):
        if self.spool is not None:
            self.spool.close()


class Interrupt:
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


async def receive_within(receive, timeout):
    """
    Return await receive(), or raise asyncio.TimeoutError after timeout
    seconds. A timer that cancels this task, where wait_for() would run the
    receive in a task of its own (and asyncio.timeout() costs twice as
    much): a request's body usually came whole before it is read.
    """
    interrupt = Interrupt(asyncio.current_task())
    timer = interrupt.task.get_loop().call_later(timeout, interrupt.timed_out)
    try:
        return await receive()
    except asyncio.CancelledError:
        if interrupt.reason is None:
            raise
        interrupt.uncancel()
        raise asyncio.TimeoutError
    finally:
        timer.cancel()


class RequestBodyMixin:
    """
    The request-body half of InterfaceApplication: its chunk_size,
    max_request_body_size, timeout, layer and sends.
    """

    async def take_in_body(self, receive):
        """
        Read the whole request body from the client before a worker is
        involved, so that a slow upload holds no worker: the first chunk in
        memory, the rest spooled to a temporary file. Each part must come
        within the timeout (else 408).
        """
        first = await self.receive_part(receive)
        part = first.get("body", b"")
        if not first.get("more_body", False) and len(part) <= self.chunk_size:
            # The usual request: its whole body, if any, in one message.
            self.check_body_size(len(part))
            body = Body()
            body.first = part if type(part) is bytes else bytes(part)
            return body
        body = Body()
        try:
            async for chunk, _ in self.read_chunks(receive, first):
                if body.first is None:
                    body.first = chunk
                elif chunk:
                    if body.spool is None:
                        body.spool = tempfile.TemporaryFile(
                            dir=settings.FILE_UPLOAD_TEMP_DIR
                        )
                    body.spool.write(chunk)
            body.more = body.spool is not None
        except BaseException:
            body.close()
            raise
        if body.spool is not None:
            body.spool.seek(0)
        return body

    async def receive_part(self, receive):
        """
        Return the client's next http.request message; raise RequestTimeout
        if none comes within the timeout, ClientDisconnected if the client
        went away.
        """
        try:
            message = await receive_within(receive, self.timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(
                "No part of the request body within %s seconds." % self.timeout
            )
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        return message

    def check_body_size(self, total):
        """Raise MessageTooLarge if a body of total bytes is over the limit."""
        if (
            self.max_request_body_size is not None
            and total > self.max_request_body_size
        ):
            raise MessageTooLarge(
                "The request body is larger than %d bytes." % self.max_request_body_size
            )

    async def read_chunks(self, receive, first=None):
        """
        Yield (chunk, more_body) pairs of the request body, each chunk_size
        bytes except the last. first is its first message, if already
        received.
        """
        # The parts uvicorn hands over (64 KiB each for a large body) are
        # kept as they come and joined once per chunk.
        chunk_size = self.chunk_size
        parts = []
        buffered = 0
        total = 0
        more_body = True
        while more_body:
            if first is not None:
                message, first = first, None
            else:
                message = await self.receive_part(receive)
            part = message.get("body", b"")
            more_body = message.get("more_body", False)
            total += len(part)
            self.check_body_size(total)
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

    async def watch_client(self, receive, body, body_channel, response):
        """
        Send the rest of the request body, if any, then wait for the client
        to go away. Return only by raising: ClientDisconnected, or the error
        that stopped the body.
        """
        if body_channel is not None:
            chunk = body.spool.read(self.chunk_size)
            while chunk:
                following = body.spool.read(self.chunk_size)
                await self.send_body_chunk(
                    body_channel, request_body_message(chunk, bool(following))
                )
                response.progress_at = time.monotonic()
                chunk = following
            response.body_closed = True
            body.close()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected

    async def send_body_chunk(self, body_channel, message):
        """Send to a body channel, waiting while the worker catches up."""
        try:
            await self.sends.send(self.layer, body_channel, message, self.timeout)
        except ChannelFull:
            raise ReplyTimeout("No worker is reading the request body.")
