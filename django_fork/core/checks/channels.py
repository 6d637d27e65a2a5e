"""
System checks of the channel settings: CHANNEL_LAYERS, CHANNEL_ROUTING and
the CHANNEL_* sizes and timeouts.

Each mistake is one message with the offending value and a hint, so that
"manage.py check" (and every command that runs checks) reports it before a
server or a worker starts, instead of a traceback from the first request.
The interface application and the commands that start servers call
exit_on_errors() to turn the same mistakes into one line each.
"""

import sys
import urllib.parse
from numbers import Real

from django.conf import settings
from django.core.checks import Error, Warning, register, run_checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

TAG = "channels"

REDIS_SCHEMES = ("redis", "rediss", "unix")
LAYER_REAL_OPTIONS = (
    "expiry",
    "group_expiry",
    "visibility_timeout",
    "connect_timeout",
    "socket_timeout",
    "block_timeout",
    "max_backoff",
)
# name -> whether None is allowed.
TIMEOUT_SETTINGS = {
    "CHANNEL_HTTP_TIMEOUT": False,
    "CHANNEL_WEBSOCKET_ACK_TIMEOUT": False,
    "CHANNEL_WEBSOCKET_IDLE_TIMEOUT": True,
}
SIZE_SETTINGS = {
    "CHANNEL_CHUNK_SIZE": False,
    "CHANNEL_WEBSOCKET_MAX_FRAME_SIZE": False,
    "CHANNEL_MAX_REQUEST_BODY_SIZE": True,
}
LOCAL_MEMORY_CACHE = "django.core.cache.backends.locmem.LocMemCache"
LAYER_KEYS = ("BACKEND", "LOCATION", "OPTIONS")


def _is_positive_real(value):
    return isinstance(value, Real) and not isinstance(value, bool) and value > 0


def _is_positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def redis_location_error(url):
    """Return what is wrong with one Redis URL, or None."""
    if not isinstance(url, str) or not url:
        return "is empty" if url in ("", None) else "is not a string"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        return "has the scheme %r, not one of %s" % (
            parts.scheme,
            ", ".join("%s://" % s for s in REDIS_SCHEMES),
        )
    if parts.scheme == "unix":
        return None if parts.path else "names no socket path"
    try:
        parts.port
    except ValueError:
        return "has a port that is not a number from 0 to 65535"
    if not parts.hostname:
        return "names no host"
    return None


def _location_errors(alias, config):
    location = config.get("LOCATION")
    urls = location if isinstance(location, (list, tuple)) else [location]
    if not urls:
        urls = [None]
    errors = []
    for url in urls:
        problem = redis_location_error(url)
        if problem:
            errors.append(
                Error(
                    "CHANNEL_LAYERS[%r]['LOCATION'] %s: %r." % (alias, problem, url),
                    hint="Give a Redis URL such as 'redis://127.0.0.1:6379/0', "
                    "'rediss://user:password@host:6380/0' or "
                    "'unix:///run/redis.sock?db=0', or a list of them.",
                    id="channels.E004",
                )
            )
    return errors


def _options_errors(alias, options):
    errors = []
    hint = "Give a number greater than 0 (seconds, or messages for capacity)."
    if "capacity" in options and not _is_positive_int(options["capacity"]):
        errors.append(
            Error(
                "CHANNEL_LAYERS[%r]['OPTIONS']['capacity'] must be a positive "
                "integer, not %r." % (alias, options["capacity"]),
                hint=hint,
                id="channels.E005",
            )
        )
    for name in LAYER_REAL_OPTIONS:
        if name in options and not _is_positive_real(options[name]):
            errors.append(
                Error(
                    "CHANNEL_LAYERS[%r]['OPTIONS'][%r] must be a positive "
                    "number, not %r." % (alias, name, options[name]),
                    hint=hint,
                    id="channels.E005",
                )
            )
    channel_capacity = options.get("channel_capacity") or {}
    if not isinstance(channel_capacity, dict):
        channel_capacity = {"": channel_capacity}
    for pattern, value in channel_capacity.items():
        if not _is_positive_int(value):
            errors.append(
                Error(
                    "CHANNEL_LAYERS[%r]['OPTIONS']['channel_capacity'][%r] must "
                    "be a positive integer, not %r." % (alias, pattern, value),
                    hint="channel_capacity maps channel globs to capacities, "
                    "such as {'http.request': 200}.",
                    id="channels.E005",
                )
            )
    return errors


def _layer_errors(alias, config):
    if not isinstance(config, dict) or "BACKEND" not in config:
        return [
            Error(
                "CHANNEL_LAYERS[%r] must be a dict with a BACKEND, not %r."
                % (alias, config),
                hint="For example {'BACKEND': "
                "'django_fork.channels.layers.inmemory.InMemoryChannelLayer'}.",
                id="channels.E002",
            )
        ]
    unknown = sorted(str(key) for key in config if key not in LAYER_KEYS)
    if unknown:
        # An ignored key would leave the layer on its defaults (a Redis layer
        # on localhost:6379) without a word.
        hint = "A layer's configuration takes BACKEND, LOCATION and OPTIONS."
        if "CONFIG" in unknown:
            hint += (
                " Channels' CONFIG is OPTIONS here, and its 'hosts' is "
                "LOCATION (a redis:// URL, or a list of them)."
            )
        return [
            Error(
                "CHANNEL_LAYERS[%r] has unknown keys: %s."
                % (alias, ", ".join(unknown)),
                hint=hint,
                id="channels.E012",
            )
        ]
    from django_fork.channels.layers.base import BaseChannelLayer

    backend = config["BACKEND"]
    try:
        backend_cls = import_string(backend)
    except ImportError as e:
        backend_cls = e
    if not (
        isinstance(backend_cls, type) and issubclass(backend_cls, BaseChannelLayer)
    ):
        return [
            Error(
                "CHANNEL_LAYERS[%r]['BACKEND'] %r is not a channel layer class%s."
                % (
                    alias,
                    backend,
                    (
                        (": %s" % backend_cls)
                        if isinstance(backend_cls, Exception)
                        else ""
                    ),
                ),
                hint="Use the dotted path of a BaseChannelLayer subclass, such as "
                "'django_fork.channels.layers.redis.RedisChannelLayer' (pip "
                "install redis) or "
                "'django_fork.channels.layers.inmemory.InMemoryChannelLayer'.",
                id="channels.E003",
            )
        ]
    errors = []
    try:
        from django_fork.channels.layers.redis import RedisChannelLayer
    except ImportError:
        pass
    else:
        if issubclass(backend_cls, RedisChannelLayer) and "LOCATION" in config:
            errors.extend(_location_errors(alias, config))
    options = config.get("OPTIONS", {})
    if not isinstance(options, dict):
        return errors + [
            Error(
                "CHANNEL_LAYERS[%r]['OPTIONS'] must be a dict, not %r."
                % (alias, options),
                hint="OPTIONS holds the backend's keyword arguments.",
                id="channels.E005",
            )
        ]
    errors.extend(_options_errors(alias, options))
    if errors:
        return errors
    options = dict(options)
    if "LOCATION" in config:
        options["location"] = config["LOCATION"]
    try:
        # Building a layer opens no connection; it only validates options.
        backend_cls(**options)
    except (TypeError, ValueError) as e:
        errors.append(
            Error(
                "CHANNEL_LAYERS[%r] is refused by %s: %s"
                % (alias, backend_cls.__name__, e),
                hint="Check OPTIONS against the backend's documented options.",
                id="channels.E006",
            )
        )
    return errors


@register(TAG)
def check_channel_layers(app_configs=None, **kwargs):
    from django_fork.channels.layers import DEFAULT_CHANNEL_LAYERS

    layers = getattr(settings, "CHANNEL_LAYERS", None)
    if layers is None:
        layers = DEFAULT_CHANNEL_LAYERS
    if not isinstance(layers, dict) or "default" not in layers:
        return [
            Error(
                "CHANNEL_LAYERS must be a dict with a 'default' alias, not %r."
                % (layers,),
                hint="Remove CHANNEL_LAYERS to use the in-memory layer, or "
                "define CHANNEL_LAYERS['default'].",
                id="channels.E001",
            )
        ]
    errors = []
    for alias, config in layers.items():
        errors.extend(_layer_errors(alias, config))
    return errors


@register(TAG)
def check_channel_routing(app_configs=None, **kwargs):
    from django_fork.channels.routing import Routing

    routing = getattr(settings, "CHANNEL_ROUTING", {})
    try:
        Routing.from_setting(routing)
    except (ImportError, ImproperlyConfigured, TypeError, AttributeError) as e:
        return [
            Error(
                "CHANNEL_ROUTING %r cannot be loaded: %s" % (routing, e),
                hint="Give the dotted path of a routing module (with "
                "channel_routes and websocket_urlpatterns), the module, or a "
                "dict of channel names to consumers.",
                id="channels.E007",
            )
        ]
    return []


@register(TAG)
def check_channel_settings(app_configs=None, **kwargs):
    errors = []
    for name, nullable in TIMEOUT_SETTINGS.items():
        if not hasattr(settings, name):
            continue
        value = getattr(settings, name)
        if not (_is_positive_real(value) or (nullable and value is None)):
            errors.append(
                Error(
                    "%s must be a positive number of seconds%s, not %r."
                    % (name, " or None" if nullable else "", value),
                    hint="For example %s = 60." % name,
                    id="channels.E008",
                )
            )
    for name, nullable in SIZE_SETTINGS.items():
        if not hasattr(settings, name):
            continue
        value = getattr(settings, name)
        if not (_is_positive_int(value) or (nullable and value is None)):
            errors.append(
                Error(
                    "%s must be a positive integer (bytes)%s, not %r."
                    % (name, " or None" if nullable else "", value),
                    hint="For example %s = 1048576." % name,
                    id="channels.E009",
                )
            )
    origins = getattr(settings, "CHANNEL_WEBSOCKET_ALLOWED_ORIGINS", None)
    if origins is not None and (
        not isinstance(origins, (list, tuple))
        or not all(isinstance(o, str) for o in origins)
    ):
        errors.append(
            Error(
                "CHANNEL_WEBSOCKET_ALLOWED_ORIGINS must be a list of origins or "
                "None, not %r." % (origins,),
                hint="For example ['https://example.com']; None allows the "
                "ALLOWED_HOSTS.",
                id="channels.E010",
            )
        )
    return errors


@register(TAG)
def check_shared_sessions(app_configs=None, **kwargs):
    """Warn when workers in several processes would not share sessions."""
    from django_fork.channels.layers import DEFAULT_CHANNEL_LAYERS

    layers = getattr(settings, "CHANNEL_LAYERS", None)
    if layers is None:
        layers = DEFAULT_CHANNEL_LAYERS
    if not isinstance(layers, dict):
        return []
    shared = [
        alias
        for alias, config in layers.items()
        if isinstance(config, dict)
        and not str(config.get("BACKEND", "")).endswith(".InMemoryChannelLayer")
    ]
    engine = settings.SESSION_ENGINE
    if not shared or engine not in (
        "django.contrib.sessions.backends.cache",
        "django.contrib.sessions.backends.cached_db",
    ):
        return []
    cache = settings.CACHES.get(settings.SESSION_CACHE_ALIAS, {})
    if cache.get("BACKEND") != LOCAL_MEMORY_CACHE:
        return []
    return [
        Warning(
            "SESSION_ENGINE %r keeps sessions in the local-memory cache %r, "
            "but the channel layer %r is shared between processes: each "
            "worker process sees sessions of its own, and a channel session "
            "can be evicted under its socket."
            % (engine, settings.SESSION_CACHE_ALIAS, shared[0]),
            hint="Use the db session engine, or a cache that the worker "
            "processes share (Redis, Memcached).",
            id="channels.W001",
        )
    ]


def exit_on_errors():
    """
    Run the channel checks; on any error, exit with one line per error
    instead of a traceback (for ASGI servers that import the interface
    application, which run no management command).
    """
    errors = [e for e in run_checks(tags=[TAG]) if e.is_serious()]
    if errors:
        sys.exit("\n".join("%s: %s HINT: %s" % (e.id, e.msg, e.hint) for e in errors))
