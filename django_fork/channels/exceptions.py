"""
Errors raised by channel layers and the channel transport.

Each error carries the HTTP status an interface server answers with when the
error stops a request, so the mapping lives in one place.
"""

from django.core.exceptions import ImproperlyConfigured


class ChannelError(Exception):
    """Base class for errors of the channel transport."""

    status_code = 500


class InvalidChannelName(ChannelError, ValueError):
    """A channel or group name does not follow the grammar."""

    status_code = 500


class InvalidMessage(ChannelError, ValueError):
    """A message is not a dict of JSON-capable values (plus bytes)."""

    status_code = 400


class InvalidReply(InvalidMessage):
    """A worker's reply is malformed; the interface answers 502."""

    status_code = 502


class ChannelFull(ChannelError):
    """The channel holds as many messages as its capacity allows."""

    status_code = 503


class ChannelFullTimeout(ChannelFull):
    """
    A send that waits for room (send_task() with a timeout, an enqueued
    task) found the channel full for all of its timeout.
    """


class MessageTooLarge(ChannelError):
    """A message (or a request body) is larger than the configured limit."""

    status_code = 413


class ChannelLayerUnavailable(ChannelError):
    """The channel layer's backing store cannot be reached."""

    status_code = 503


class ReplyTimeout(ChannelError):
    """No worker answered within the configured time."""

    status_code = 504


class InvalidChannelLayerError(ImproperlyConfigured):
    """A CHANNEL_LAYERS alias is missing or misconfigured."""
