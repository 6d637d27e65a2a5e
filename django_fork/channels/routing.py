"""
Which consumer handles which channel, and which WebSocket path.

The CHANNEL_ROUTING setting plays the part ROOT_URLCONF plays for views. It
is the dotted path of a routing module, or a dict of channel routes::

    # project/routing.py
    from django.urls import path

    from chat.consumers import ChatConsumer
    from images.consumers import make_thumbnail

    channel_routes = {
        "thumbnails": make_thumbnail,
        "emails": "mail.consumers.send_email",
    }
    websocket_urlpatterns = [
        path("ws/chat/<slug:room>/", ChatConsumer.as_consumer()),
    ]

A channel consumer is a callable taking the message: a plain function runs
in a worker thread, an ``async def`` one on the worker's event loop. The
worker serves http.request itself; a route for it replaces that. WebSocket
paths are matched with Django's URL resolver, so ``path()`` and
``re_path()`` patterns, converters and include() work as in a URLconf.
"""

import fnmatch
from types import ModuleType

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.urls import URLResolver
from django.urls.resolvers import RegexPattern
from django.utils.module_loading import import_string


class Routing:
    """The channel routes and WebSocket URL patterns of a project."""

    def __init__(self, channel_routes=None, websocket_urlpatterns=None):
        self.channel_routes = {}
        for channel, consumer in (channel_routes or {}).items():
            if isinstance(consumer, str):
                consumer = import_string(consumer)
            if not callable(consumer):
                raise ImproperlyConfigured(
                    "The consumer for channel %r is not callable." % channel
                )
            self.channel_routes[channel] = consumer
        self.websocket_urlpatterns = list(websocket_urlpatterns or [])
        self._resolver = None

    @classmethod
    def from_setting(cls, routing=None):
        """Build the routing named by CHANNEL_ROUTING (or routing)."""
        if routing is None:
            routing = getattr(settings, "CHANNEL_ROUTING", None) or {}
        if isinstance(routing, str):
            try:
                routing = import_string(routing)
            except ImportError:
                from importlib import import_module

                routing = import_module(routing)
        if isinstance(routing, ModuleType):
            return cls(
                getattr(routing, "channel_routes", None),
                getattr(routing, "websocket_urlpatterns", None),
            )
        if isinstance(routing, dict):
            return cls(routing)
        raise ImproperlyConfigured(
            "CHANNEL_ROUTING must be a routing module, its dotted path, or a "
            "dict of channel consumers."
        )

    def resolve_websocket(self, path):
        """
        Return the ResolverMatch of a WebSocket path; its func is the
        consumer. Raise django.urls.Resolver404 when nothing matches.
        """
        if self._resolver is None:
            self._resolver = URLResolver(
                RegexPattern(r"^/"), self.websocket_urlpatterns
            )
        return self._resolver.resolve(path)


def get_project_routes(routing=None):
    """Return CHANNEL_ROUTING's channel routes as {channel: consumer}."""
    return Routing.from_setting(routing).channel_routes


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
