"""
Which consumer handles which channel.

The CHANNEL_ROUTING setting maps channel names to consumers, the way a
URLconf maps paths to views. It is a dict, or the dotted path of one:

    CHANNEL_ROUTING = {
        "thumbnails": "images.consumers.make_thumbnail",
        "emails": send_email,
    }

A consumer is a callable taking the message. A plain function runs in a
worker thread; an ``async def`` one runs on the worker's event loop. The
worker serves http.request itself; a project route for it replaces that.
"""

import fnmatch

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string


def get_project_routes(routing=None):
    """Return CHANNEL_ROUTING (or routing) as {channel: consumer callable}."""
    if routing is None:
        routing = getattr(settings, "CHANNEL_ROUTING", None) or {}
    if isinstance(routing, str):
        routing = import_string(routing)
    if not isinstance(routing, dict):
        raise ImproperlyConfigured("CHANNEL_ROUTING must be a dict of consumers.")
    routes = {}
    for channel, consumer in routing.items():
        if isinstance(consumer, str):
            consumer = import_string(consumer)
        if not callable(consumer):
            raise ImproperlyConfigured(
                "The consumer for channel %r is not callable." % channel
            )
        routes[channel] = consumer
    return routes


def select_channels(channels, only=None, exclude=None):
    """
    Return the channels matching any of the only globs (all when only is
    empty) and none of the exclude globs, in their original order.
    """
    return [
        channel
        for channel in channels
        if (not only or any(fnmatch.fnmatchcase(channel, g) for g in only))
        and not any(fnmatch.fnmatchcase(channel, g) for g in exclude or ())
    ]
