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
"""

from django.db import DEFAULT_DB_ALIAS, transaction

from django_fork.channels.layers import (
    DEFAULT_CHANNEL_LAYER_ALIAS,
    channel_layers,
)

__all__ = ["asend_task", "send_task"]


def send_task(
    channel,
    message,
    *,
    on_commit=False,
    using=DEFAULT_DB_ALIAS,
    delay=None,
    layer=DEFAULT_CHANNEL_LAYER_ALIAS,
):
    """
    Send message to channel. With on_commit, send it when the transaction
    of database using commits (at once outside a transaction; never if it
    rolls back). With delay, deliver it delay seconds later (the layer must
    have the "delay" extension).
    """
    channel_layer = channel_layers[layer]
    if delay is not None:
        channel_layer.require_extension("delay")
    # Validate now, in the view, rather than later in a commit hook.
    channel_layer.validate_channel_name(channel)
    message = channel_layer.copy_message(message)

    def send():
        if delay is None:
            channel_layer.send_sync(channel, message)
        else:
            channel_layer.send_later_sync(channel, message, delay)

    if on_commit:
        transaction.on_commit(send, using=using, robust=False)
    else:
        send()


async def asend_task(
    channel, message, *, delay=None, layer=DEFAULT_CHANNEL_LAYER_ALIAS
):
    """Async twin of send_task() (without on_commit: use it in sync code)."""
    channel_layer = channel_layers[layer]
    if delay is None:
        await channel_layer.send(channel, message)
    else:
        channel_layer.require_extension("delay")
        await channel_layer.send_later(channel, message, delay)
