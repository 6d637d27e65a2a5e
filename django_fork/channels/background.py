"""
Background work: send a message to a named channel from a view.

A consumer routed to the channel (CHANNEL_ROUTING) runs it on a worker; a
worker pool started with ``runworker --only-channels thumbnails`` serves only
that channel, so heavy work can live on its own machines::

    from django_fork.channels.background import send_task

    def upload(request):
        photo = Photo.objects.create(...)
        # Sent once the transaction commits: the consumer never looks for a
        # row that does not exist yet.
        message = {"type": "thumbnail", "id": photo.pk}
        send_task("thumbnails", message, on_commit=True)

A full channel refuses a send at once (ChannelFull) unless the send has a
timeout: then it waits for room, retrying with a backoff, for up to that
long before it raises ChannelFullTimeout. Enqueued tasks wait that way, so a
burst of them fills the queue and waits for workers rather than fails.
"""

import asyncio
import time

from django.db import DEFAULT_DB_ALIAS, transaction

from django_fork.channels.exceptions import ChannelFull, ChannelFullTimeout
from django_fork.channels.layers import (
    DEFAULT_CHANNEL_LAYER_ALIAS,
    channel_layers,
)

__all__ = ["asend_task", "send_task"]

#: The first retry's delay, and the longest delay between retries (seconds),
#: of a send waiting for room. The longest is short beside the time workers
#: take to drain a queue of a hundred tasks, so a queue never idles long.
FIRST_DELAY = 0.001
MAX_DELAY = 0.02


class _Backoff:
    """
    The waits of a send retried on a full channel: after each ChannelFull,
    next_delay() gives how long to sleep before the next try, or raises
    (the ChannelFull itself without a timeout, ChannelFullTimeout once the
    timeout is over).
    """

    def __init__(self, channel_layer, channel, timeout):
        self.channel_layer = channel_layer
        self.channel = channel
        self.timeout = timeout
        self.deadline = None
        self.delay = FIRST_DELAY

    def next_delay(self):
        if not self.timeout:
            raise
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.timeout
        elif now >= self.deadline:
            raise ChannelFullTimeout(
                "Channel %r stayed full (capacity %d) for %s seconds: its "
                "consumers are not keeping up, or none is running."
                % (
                    self.channel,
                    self.channel_layer.get_capacity(self.channel),
                    self.timeout,
                )
            ) from None
        delay = min(self.delay, max(0.0, self.deadline - now))
        self.delay = min(self.delay * 2, MAX_DELAY)
        return delay


def _send_waiting(channel_layer, channel, message, timeout):
    """Send, waiting for room for up to timeout seconds (None: not at all)."""
    backoff = _Backoff(channel_layer, channel, timeout)
    while True:
        try:
            return channel_layer.send_sync(channel, message)
        except ChannelFull:
            delay = backoff.next_delay()
        time.sleep(delay)


async def _asend_waiting(channel_layer, channel, message, timeout):
    """Async twin of _send_waiting()."""
    backoff = _Backoff(channel_layer, channel, timeout)
    while True:
        try:
            return await channel_layer.send(channel, message)
        except ChannelFull:
            delay = backoff.next_delay()
        await asyncio.sleep(delay)


def send_task(
    channel,
    message,
    *,
    on_commit=False,
    using=DEFAULT_DB_ALIAS,
    delay=None,
    layer=DEFAULT_CHANNEL_LAYER_ALIAS,
    timeout=None,
):
    """
    Send message to channel. With on_commit, send it when the transaction
    of database using commits (at once outside a transaction; never if it
    rolls back). With delay, deliver it delay seconds later (the layer must
    have the "delay" extension). With timeout, wait up to timeout seconds
    for room while channel is full, then raise ChannelFullTimeout; without
    it, a full channel raises ChannelFull at once.
    """
    channel_layer = channel_layers[layer]
    if delay is not None:
        channel_layer.require_extension("delay")
    # Validate now, in the view, rather than later in a commit hook.
    channel_layer.validate_channel_name(channel)
    message = channel_layer.copy_message(message)

    def send():
        if delay is None:
            _send_waiting(channel_layer, channel, message, timeout)
        else:
            channel_layer.send_later_sync(channel, message, delay)

    if on_commit:
        transaction.on_commit(send, using=using, robust=False)
    else:
        send()


async def asend_task(
    channel, message, *, delay=None, layer=DEFAULT_CHANNEL_LAYER_ALIAS, timeout=None
):
    """Async twin of send_task() (without on_commit: use it in sync code)."""
    channel_layer = channel_layers[layer]
    if delay is None:
        await _asend_waiting(channel_layer, channel, message, timeout)
    else:
        channel_layer.require_extension("delay")
        await channel_layer.send_later(channel, message, delay)
