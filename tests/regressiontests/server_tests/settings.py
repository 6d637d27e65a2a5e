"""Settings of the project that the server tests start in subprocesses."""

import os

SECRET_KEY = "server-tests"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django_fork"]
ROOT_URLCONF = "channel_path_tests.urls"
CHANNEL_ROUTING = "websocket_tests.routing"
USE_TZ = True
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES = {}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"django_fork": {"level": "INFO"}},
}
if os.environ.get("SERVER_TESTS_REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "django_fork.channels.layers.redis.RedisChannelLayer",
            "LOCATION": os.environ["SERVER_TESTS_REDIS_URL"],
        }
    }
    # Channel sessions must be shared by the worker processes.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["SERVER_TESTS_REDIS_URL"].replace("/0", "/1"),
        }
    }
    SESSION_ENGINE = "django.contrib.sessions.backends.cache"
