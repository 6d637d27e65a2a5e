"""
The worker's consumer for http.request: Django views over the channel layer.

It reads the request body (from the message, then from its body channel when
the body is large), runs ChannelHandler in a worker thread, and sends the
response messages from that thread: the start message on the reply channel,
further chunks on a single-reader body channel that the interface server
drains as the client reads, which bounds memory on both sides.
"""

import asyncio
import io
import logging
import tempfile
import time

from django.conf import settings

from django_fork.channels.codecs import (
    disconnect_message,
    encode_response,
    encode_short_response,
    encode_streaming_parts,
    error_response_messages,
    response_body_message,
    response_headers,
    response_start_message,
    validate_body_message,
    validate_request_message,
)
from django_fork.channels.exceptions import ChannelError, ChannelFull, InvalidMessage
from django_fork.channels.messages import (
    HTTP_RESPONSE_ACK_PREFIX,
    HTTP_RESPONSE_BODY_PREFIX,
    HTTP_RESPONSE_WINDOW,
)
from django_fork.channels.names import new_channel_name, validate_channel_name
from django_fork.core.handlers.channel import ChannelHandler

logger = logging.getLogger("django_fork.channels.http")


class RequestAborted(Exception):
    """The client went away, or its body stopped arriving."""


class ResponseAborted(Exception):
    """The client went away, or the interface stopped acknowledging."""


class _Stream:
    """
    A response body on its way: where it goes, how far ahead of the
    interface's acknowledgements it is, and whether the client left.

    A listener task reads the ack channel for the whole stream, so a
    disconnect is seen at once, not only when the window is full: the next
    part the view produces then stops the response.
    """

    def __init__(self, layer, timeout):
        self.layer = layer
        self.timeout = timeout
        self.body_channel = new_channel_name(
            HTTP_RESPONSE_BODY_PREFIX, layer.client_prefix
        )
        self.ack_channel = new_channel_name(
            HTTP_RESPONSE_ACK_PREFIX, layer.client_prefix
        )
        self.unacknowledged = 0
        #: Why the stream must stop (the client left), or None.
        self.aborted = None
        self.progress_at = time.monotonic()
        self._changed = asyncio.Event()
        self._listener = None

    def listen(self):
        """Start reading the ack channel (on the worker's event loop)."""
        self._listener = asyncio.ensure_future(self._listen())

    async def _listen(self):
        while True:
            message = await self.layer.receive(self.ack_channel)
            message_type = message.get("type")
            if message_type == "http.response.ack":
                self.unacknowledged -= 1
            elif message_type != "http.response.progress":
                self.aborted = "the client went away"
            self.progress_at = time.monotonic()
            self._changed.set()
            if self.aborted:
                return

    async def wait_for_room(self):
        """
        Wait until the window has room for another chunk. Raise
        ResponseAborted when the client left, or when the interface reported
        no progress for the timeout: its client stopped reading.
        """
        while True:
            self.check()
            if self.unacknowledged < HTTP_RESPONSE_WINDOW:
                return
            remaining = self.progress_at + self.timeout - time.monotonic()
            if remaining <= 0:
                raise ResponseAborted("the interface stopped acknowledging")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    def check(self):
        """Raise ResponseAborted if the client left."""
        if self.aborted:
            raise ResponseAborted(self.aborted)

    async def end(self, worker, abandoned):
        """
        Stop listening. A stream that did not finish gets an http.disconnect
        in place of its last chunk: the interface ends the client's response
        at once (a view that raised) or stops draining the channel.
        """
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if abandoned:
            try:
                await worker.send_stream(self.body_channel, disconnect_message("", "/"))
            except ChannelError:
                pass


class HttpConsumer:
    """Serve http.request messages with Django's handler."""

    #: Seconds to wait for each further chunk of a request body.
    body_timeout = 60

    def __init__(self, worker):
        self.worker = worker
        self._handler = None

    @property
    def handler(self):
        # Built on first use, once settings and apps are ready.
        if self._handler is None:
            self._handler = ChannelHandler()
        return self._handler

    @property
    def layer(self):
        return self.worker.layer

    async def __call__(self, message):
        try:
            validate_request_message(message)
        except InvalidMessage as e:
            await self.refuse(message, e)
            return
        body_file = await self.open_body(message)
        if body_file is None:
            return
        try:
            response = await self.worker.run_sync(self.serve, message, body_file)
        finally:
            body_file.close()
        if response is not None:
            # An async streaming response: iterate it on the event loop.
            await self.stream_async(message, response)

    def serve_in_thread(self, message):
        """
        Serve message in this thread, a worker's receiving thread. The whole
        of a request whose body came in its message and whose response fits
        in its start message stays in this thread; a body in chunks and a
        streamed response use the worker's event loop, where their flow
        control lives.
        """
        try:
            validate_request_message(message)
        except InvalidMessage as e:
            self.refuse_sync(message, e)
            return
        if message["more_body"]:
            body_file = self.worker.call_from_thread(self.open_body(message))
            if body_file is None:
                return
        else:
            body_file = io.BytesIO(message["body"])
        try:
            response = self.serve(message, body_file)
        finally:
            body_file.close()
        if response is not None:
            self.worker.call_from_thread(self.stream_async(message, response))

    async def open_body(self, message):
        """
        Return read_body(message), or None when the request was aborted or
        its body is malformed (refused).
        """
        try:
            return await self.read_body(message)
        except RequestAborted as e:
            logger.info("Request to %s aborted: %s", message["path"], e)
        except InvalidMessage as e:
            await self.refuse(message, e)
        return None

    @staticmethod
    def _refusal(message, error):
        """
        Log a malformed message; return the reply channel to answer 400 on,
        or None if it names none.
        """
        logger.warning("Dropped a malformed http.request message: %s", error)
        reply_channel = message.get("reply_channel")
        try:
            validate_channel_name(reply_channel)
        except ValueError:
            return None
        return reply_channel

    def refuse_sync(self, message, error):
        """refuse() from a worker thread."""
        reply_channel = self._refusal(message, error)
        if reply_channel is not None:
            try:
                self.layer.send_sync(
                    reply_channel, error_response_messages(400, "Bad Request")
                )
            except ChannelFull:
                pass

    async def refuse(self, message, error):
        """Log a malformed message; answer 400 if it names a reply channel."""
        reply_channel = self._refusal(message, error)
        if reply_channel is not None:
            try:
                await self.layer.send(
                    reply_channel, error_response_messages(400, "Bad Request")
                )
            except ChannelFull:
                pass

    async def read_body(self, message):
        """
        Return the request body as a file: in memory up to
        FILE_UPLOAD_MAX_MEMORY_SIZE, else a temporary file on disk. Chunks
        are kept as they come and joined once, not copied into a growing
        buffer.
        """
        if not message["more_body"]:
            return io.BytesIO(message["body"])
        chunks = [message["body"]]
        size = len(message["body"])
        spool = None
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(
                        self.layer.receive(message["body_channel"]),
                        self.body_timeout,
                    )
                except asyncio.TimeoutError:
                    raise RequestAborted("no body chunk within the timeout")
                validate_body_message(chunk, "http.request.body")
                if chunk["type"] == "http.disconnect":
                    raise RequestAborted("the client disconnected")
                size += len(chunk["body"])
                if spool is None and size > settings.FILE_UPLOAD_MAX_MEMORY_SIZE:
                    spool = tempfile.TemporaryFile()
                    spool.writelines(chunks)
                    chunks = None
                if spool is None:
                    chunks.append(chunk["body"])
                else:
                    spool.write(chunk["body"])
                if not chunk["more_body"]:
                    break
        except BaseException:
            if spool is not None:
                spool.close()
            raise
        if spool is None:
            return io.BytesIO(b"".join(chunks))
        spool.seek(0)
        return spool

    def serve(self, message, body_file):
        """
        Run the view in this worker thread and send the response from here.

        Return an async streaming response, for the event loop to iterate,
        or None when everything was sent. A response that fits in its start
        message goes straight from this thread to the layer, without waiting
        for the event loop. The response is closed in this thread, where its
        view ran, so request_finished sees the thread's database connections.
        """
        response = self.handler(message, body_file)
        head = message["method"] == "HEAD"
        if response.streaming and response.is_async and not head:
            return response
        chunk_size = self.handler.chunk_size
        call = self.worker.call_from_thread
        stream = None
        finished = False
        try:
            start = encode_short_response(response, chunk_size, head)
            if start is not None:
                self.layer.send_sync(message["reply_channel"], start)
                return None
            stream = self.new_stream()
            messages = encode_response(
                response,
                stream.body_channel,
                chunk_size,
                stream.ack_channel,
                head=head,
            )
            call(self.send_start(message, stream, next(messages)))
            for body_message in messages:
                call(self.send_chunk(stream, body_message))
            finished = True
        except ResponseAborted as e:
            logger.info("Response to %s abandoned: %s", message["path"], e)
        finally:
            try:
                if stream is not None:
                    call(stream.end(self.worker, not finished))
            finally:
                response.close()
        return None

    def new_stream(self):
        return _Stream(self.layer, self.worker.stream_timeout)

    async def send_start(self, message, stream, start):
        """Send the start of a streamed response; listen for its progress."""
        stream.listen()
        await self.layer.send(message["reply_channel"], start)

    async def send_chunk(self, stream, body_message):
        """
        Send a further chunk, at most HTTP_RESPONSE_WINDOW chunks ahead of
        the interface's acknowledgements: a client that reads slowly slows
        the view, and one that went away stops it.
        """
        await stream.wait_for_room()
        try:
            await self.worker.send_stream(stream.body_channel, body_message)
        except ChannelFull:
            raise ResponseAborted("the interface stopped reading")
        stream.unacknowledged += 1
        stream.check()

    async def stream_async(self, message, response):
        """Send a response whose content is an async iterator."""
        stream = self.new_stream()
        finished = False
        try:
            await self.send_start(
                message,
                stream,
                response_start_message(
                    response.status_code,
                    response_headers(response),
                    b"",
                    True,
                    stream.body_channel,
                    stream.ack_channel,
                ),
            )
            chunk_size = self.handler.chunk_size
            async for part in response.streaming_content:
                for body_message in encode_streaming_parts([part], chunk_size):
                    if body_message["more_body"]:
                        await self.send_chunk(stream, body_message)
            await self.send_chunk(stream, response_body_message(b"", False))
            finished = True
        except ResponseAborted as e:
            logger.info("Response to %s abandoned: %s", message["path"], e)
        finally:
            try:
                await stream.end(self.worker, not finished)
            finally:
                await self.worker.run_sync(response.close)
