"""Channels: the message-passing base layer of Django."""

from django_fork.channels.exceptions import (
    ChannelError,
    ChannelFull,
    ChannelFullTimeout,
    ChannelLayerUnavailable,
    InvalidChannelName,
    InvalidMessage,
    MessageTooLarge,
    ReplyTimeout,
)
from django_fork.channels.layers import channel_layers, get_channel_layer

__all__ = [
    "ChannelError",
    "ChannelFull",
    "ChannelFullTimeout",
    "ChannelLayerUnavailable",
    "InvalidChannelName",
    "InvalidMessage",
    "MessageTooLarge",
    "ReplyTimeout",
    "channel_layers",
    "get_channel_layer",
]
