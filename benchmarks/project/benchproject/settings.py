"""
Settings of the project every benchmark setup serves.

One project, one set of views; environment variables choose what differs
between setups:

- BENCH_FORK=1: "django_fork" in INSTALLED_APPS (the branch's WSGI path,
  runstack, runworker, the interface application).
- BENCH_PEER=1: "channels" in INSTALLED_APPS (Channels 4.3, the peer).
- BENCH_REDIS_URL: the Redis server of the channel layer: django_fork's
  RedisChannelLayer with BENCH_FORK=1, channels_redis with BENCH_PEER=1.
  Without it, django_fork uses its default in-memory layer.
- BENCH_HTTP_TIMEOUT: seconds the interface waits for a worker (default 60).
- BENCH_IMPOLITE=1 (with BENCH_FORK=1): the views and consumer of the
  impolite-client drills (benchproject/impolite.py).
- BENCH_WS=1 (with BENCH_FORK=1): the WebSocket consumers of
  benchmarks/websockets.py (benchproject/ws.py).
"""

import os

FORK = os.environ.get("BENCH_FORK") == "1"
PEER = os.environ.get("BENCH_PEER") == "1"
REDIS_URL = os.environ.get("BENCH_REDIS_URL")

SECRET_KEY = "benchmarks-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = []
if FORK:
    INSTALLED_APPS.append("django_fork")
if PEER:
    INSTALLED_APPS.append("channels")
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "benchproject.urls"
DATABASES = {}
USE_TZ = True
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

CHANNEL_HTTP_TIMEOUT = float(os.environ.get("BENCH_HTTP_TIMEOUT", "60"))
# big_upload.py sends 1 GiB through the channel path.
CHANNEL_MAX_REQUEST_BODY_SIZE = None

IMPOLITE = FORK and os.environ.get("BENCH_IMPOLITE") == "1"
if IMPOLITE:
    # The impolite-client drills: their views, and a WebSocket consumer
    # with a channel session in the cache (Redis with a Redis layer, else in
    # memory).
    CHANNEL_ROUTING = "benchproject.impolite"
    SESSION_ENGINE = "django.contrib.sessions.backends.cache"
    INSTALLED_APPS.append("django.contrib.sessions")
    if REDIS_URL:
        CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": REDIS_URL,
            }
        }
    else:
        # Room for a session per socket of the drills (the default is 300).
        CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "OPTIONS": {"MAX_ENTRIES": 100000},
            }
        }

if FORK and os.environ.get("BENCH_WS") == "1":
    CHANNEL_ROUTING = "benchproject.ws"

if FORK and REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "django_fork.channels.layers.redis.RedisChannelLayer",
            "LOCATION": REDIS_URL,
        }
    }
elif PEER:
    ASGI_APPLICATION = "benchproject.peer.application"
    if REDIS_URL:
        # redis-py 8 gives every connection a 5 s socket timeout by default,
        # the same as channels_redis 4.3.0's BZPOPMIN timeout: an idle
        # receive then raises TimeoutError, which kills the consumer (a
        # runworker's application instance and the messages queued in it).
        # A longer socket timeout keeps the peer working.
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
            }
        }
