"""
How the interface relays a response: its start, then a streamed body chunk
by chunk, acknowledging each so that the worker may send the next, with
progress reports while a slow client reads; and, for a client that left,
the end of the exchange in the background, so that nothing of it stays on
the layer.
"""

import asyncio
import logging
import time

from django_fork.channels.codecs import (
    disconnect_message,
    validate_body_message,
    validate_response_start,
)
from django_fork.channels.exceptions import (
    ChannelError,
    ChannelFull,
    InvalidMessage,
    InvalidReply,
    ReplyTimeout,
)
from django_fork.channels.interface_body import ClientDisconnected, Interrupt
from django_fork.channels.messages import HTTP_DISCONNECT_CHANNEL

__all__ = ["ResponseRelayMixin", "ResponseState"]

logger = logging.getLogger("django_fork.channels.interface")

#: Bytes of a response body handed to the server at a time: the progress of
#: a slow reader is seen between them.
PIECE_SIZE = 64 * 1024
#: Seconds between the progress reports of a slowly read response.
PROGRESS_INTERVAL = 1.0


class ResponseState:
    """
    Whether the response has started (errors can then no longer be sent),
    and when the request last made progress: when it was sent, then when
    each further chunk of its body went to the worker.
    """

    started = False
    #: The worker has the whole body, or was told to stop waiting for it.
    body_closed = False
    #: The start message, once it came.
    start = None
    #: Whether the whole response went to the client.
    finished = False

    def __init__(self):
        self.progress_at = time.monotonic()


class ClientStream:
    """
    A streamed response on its way to the client. The body goes to the
    server in pieces; when the client reads slowly, the worker hears of the
    progress between acknowledgements (http.response.progress), so that a
    slow but live reader is not taken for a dead one. A piece the client
    does not take within the timeout ends the response.
    """

    def __init__(self, interface, send, ack_channel):
        self.interface = interface
        self.send = send
        self.ack_channel = ack_channel
        self.signalled_at = time.monotonic()

    async def write(self, body, more_body):
        if len(body) <= PIECE_SIZE:
            await self._write(body, more_body)
            return
        view = memoryview(body)
        for position in range(0, len(body), PIECE_SIZE):
            last = position + PIECE_SIZE >= len(body)
            piece = bytes(view[position : position + PIECE_SIZE])
            await self._write(piece, more_body or not last)

    async def _write(self, piece, more_body):
        message = {"type": "http.response.body", "body": piece, "more_body": more_body}
        try:
            await asyncio.wait_for(self.send(message), self.interface.timeout)
        except asyncio.TimeoutError:
            raise ClientDisconnected("The client stopped reading.")
        if (
            self.ack_channel is not None
            and more_body
            and time.monotonic() - self.signalled_at >= self.interface.progress_interval
        ):
            self.signalled_at = time.monotonic()
            try:
                await self.interface.layer.send(
                    self.ack_channel, {"type": "http.response.progress"}
                )
            except ChannelError:
                # The next progress report, or the acknowledgement, will do.
                pass

    async def acknowledge(self):
        """Acknowledge a chunk: the worker may send one more."""
        self.signalled_at = time.monotonic()
        interface = self.interface
        try:
            await interface.sends.send(
                interface.layer,
                self.ack_channel,
                {"type": "http.response.ack"},
                interface.timeout,
                control=True,
            )
        except ChannelFull:
            raise ReplyTimeout("The worker stopped taking acknowledgements.")


class ResponseRelayMixin:
    """
    The response half of InterfaceApplication: its timeout, layer and
    sends, and the abandoned exchanges it finishes in the background.
    """

    #: Seconds between the progress reports of a slowly read response.
    progress_interval = PROGRESS_INTERVAL

    async def receive_reply(self, channel, client, timeout=None):
        """
        Return the next message on channel. Raise what ended the client
        watcher if it ends first, ReplyTimeout if nothing comes in time.

        The receive runs in this task, not in one of its own, which would
        cost every reply a turn of the event loop: the client watcher and
        the timeout interrupt it by cancelling this task.
        """
        if timeout is None:
            timeout = self.timeout
        if client.done():
            client.result()
        interrupt = Interrupt(asyncio.current_task())
        timer = interrupt.task.get_loop().call_later(timeout, interrupt.timed_out)
        client.add_done_callback(interrupt.client_done)
        try:
            return await self.layer.receive(channel)
        except asyncio.CancelledError:
            if interrupt.reason is None:
                raise
            interrupt.uncancel()
            if interrupt.reason == "client":
                client.result()
            raise ReplyTimeout("No reply within %s seconds." % self.timeout)
        finally:
            timer.cancel()
            client.remove_done_callback(interrupt.client_done)

    async def receive_start(self, reply_channel, client, response):
        """
        Return the start of the response. The timeout runs from the latest
        progress of the request: an upload that takes longer than the
        timeout to stream to the worker is not a worker that doesn't answer.
        (Cancelling a receive loses no message, so waiting again is safe.)
        """
        timeout = self.timeout
        while True:
            try:
                return await self.receive_reply(reply_channel, client, timeout)
            except ReplyTimeout:
                idle = time.monotonic() - response.progress_at
                if idle >= self.timeout:
                    raise
                timeout = self.timeout - idle

    async def relay_response(self, reply_channel, client, send, response):
        start = await self.receive_start(reply_channel, client, response)
        try:
            validate_response_start(start)
        except InvalidMessage as e:
            raise InvalidReply(str(e)) from e
        response.started = True
        response.start = start
        await send(
            {
                "type": "http.response.start",
                "status": start["status"],
                "headers": start["headers"],
            }
        )
        if not start["more_body"]:
            response.finished = True
            await send({"type": "http.response.body", "body": start["body"]})
            return
        ack_channel = start.get("ack_channel")
        stream = ClientStream(self, send, ack_channel)
        await stream.write(start["body"], True)
        more_body = True
        while more_body:
            more_body = await self.relay_chunk(start, client, stream)
            if more_body and ack_channel is not None:
                await stream.acknowledge()
        response.finished = True

    async def relay_chunk(self, start, client, stream):
        """Relay the next response chunk; return whether more follow."""
        message = await self.receive_reply(start["body_channel"], client)
        try:
            validate_body_message(message, "http.response.body")
        except InvalidMessage as e:
            raise InvalidReply(str(e)) from e
        if message["type"] == "http.disconnect":
            raise InvalidReply("The worker abandoned the response.")
        await stream.write(message["body"], message["more_body"])
        return message["more_body"]

    async def notify_worker(self, channel):
        """Tell a worker on its ack or body channel that the client left."""
        await self.sends.send(
            self.layer,
            channel,
            disconnect_message("", "/"),
            self.timeout,
            control=True,
        )

    def abandon(self, reply_channel, response):
        """
        Finish, in the background, the exchange of a client that went away
        (or was answered 504): wait for the start of its response if it has
        not come, tell a worker that streams it to stop, and take what it
        already sent off the layer, so that nothing of it stays in memory
        until it expires.
        """
        task = asyncio.ensure_future(self._abandon(reply_channel, response))
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)

    async def _abandon(self, reply_channel, response):
        start = response.start
        try:
            if start is None:
                start = await asyncio.wait_for(
                    self.layer.receive(reply_channel), self.timeout
                )
            elif response.finished:
                return
            if not (isinstance(start, dict) and start.get("more_body")):
                return
            if start.get("ack_channel"):
                await self.notify_worker(start["ack_channel"])
            # The worker stops after at most a window of chunks, then ends
            # the stream with a final chunk or an http.disconnect.
            while True:
                message = await asyncio.wait_for(
                    self.layer.receive(start["body_channel"]), self.timeout
                )
                if message.get("type") != "http.response.body" or not message.get(
                    "more_body"
                ):
                    return
        except (asyncio.TimeoutError, ChannelError, KeyError, TypeError):
            return

    async def notify_disconnect(self, reply_channel, path):
        """Tell consumers that track connections that a client left."""
        try:
            await self.sends.send(
                self.layer,
                HTTP_DISCONNECT_CHANNEL,
                disconnect_message(reply_channel, path),
                self.timeout,
                control=True,
            )
        except ChannelFull:
            logger.warning("Lost the disconnect notice of a request to %s.", path)
