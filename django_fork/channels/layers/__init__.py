"""
Channel layers, configured by the CHANNEL_LAYERS setting.

CHANNEL_LAYERS is shaped like CACHES::

    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "django_fork.channels.layers.redis.RedisChannelLayer",
            "LOCATION": "redis://127.0.0.1:6379/0",
            "OPTIONS": {"capacity": 200, "expiry": 30},
        },
    }

With no CHANNEL_LAYERS setting, the default alias is an in-memory layer, so a
single-process stack (manage.py runstack) works with no configuration.

Unlike database connections and caches, layer instances are shared by every
thread of the process: an in-memory layer is the meeting point of the
interface and the workers of one process, and a layer multiplexes the reply
channels of its process over one receive.
"""

import threading

from django.conf import settings
from django.utils.connection import BaseConnectionHandler
from django.utils.module_loading import import_string

from django_fork.channels.exceptions import InvalidChannelLayerError

__all__ = [
    "DEFAULT_CHANNEL_LAYER_ALIAS",
    "DEFAULT_CHANNEL_LAYERS",
    "ChannelLayerHandler",
    "channel_layers",
    "get_channel_layer",
]

DEFAULT_CHANNEL_LAYER_ALIAS = "default"

DEFAULT_CHANNEL_LAYERS = {
    DEFAULT_CHANNEL_LAYER_ALIAS: {
        "BACKEND": "django_fork.channels.layers.inmemory.InMemoryChannelLayer",
    },
}


class _SharedConnections:
    """Attribute storage shared by every thread of the process."""


class ChannelLayerHandler(BaseConnectionHandler):
    settings_name = "CHANNEL_LAYERS"
    exception_class = InvalidChannelLayerError

    def __init__(self, settings=None):
        super().__init__(settings)
        self._connections = _SharedConnections()
        self._create_lock = threading.Lock()

    def configure_settings(self, settings_dict):
        if settings_dict is None:
            settings_dict = getattr(settings, self.settings_name, None)
            if settings_dict is None:
                settings_dict = DEFAULT_CHANNEL_LAYERS
        if DEFAULT_CHANNEL_LAYER_ALIAS not in settings_dict:
            raise self.exception_class(
                "You must define a '%s' channel layer." % DEFAULT_CHANNEL_LAYER_ALIAS
            )
        for alias, config in settings_dict.items():
            if "BACKEND" not in config:
                raise self.exception_class("CHANNEL_LAYERS[%r] has no BACKEND." % alias)
        return settings_dict

    def __getitem__(self, alias):
        try:
            return getattr(self._connections, alias)
        except AttributeError:
            pass
        with self._create_lock:
            try:
                return getattr(self._connections, alias)
            except AttributeError:
                if alias not in self.settings:
                    raise self.exception_class(
                        "The channel layer alias %r doesn't exist." % alias
                    )
                layer = self.create_connection(alias)
                setattr(self._connections, alias, layer)
                return layer

    def create_connection(self, alias):
        config = self.settings[alias]
        try:
            backend_cls = import_string(config["BACKEND"])
        except ImportError as e:
            raise self.exception_class(
                "Could not find channel layer backend %r: %s" % (config["BACKEND"], e)
            ) from e
        options = dict(config.get("OPTIONS", {}))
        if "LOCATION" in config:
            options["location"] = config["LOCATION"]
        layer = backend_cls(**options)
        layer.alias = alias
        return layer

    def reset(self):
        """Forget configured layers; the next access builds them anew."""
        self._settings = None
        self.__dict__.pop("settings", None)
        self._connections = _SharedConnections()

    def close_all(self):
        for layer in self.all(initialized_only=True):
            layer.close_sync()


channel_layers = ChannelLayerHandler()


def get_channel_layer(alias=DEFAULT_CHANNEL_LAYER_ALIAS):
    """Return the channel layer configured under alias."""
    return channel_layers[alias]
