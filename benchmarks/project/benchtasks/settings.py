"""
Settings of the task benchmark's Django processes (benchmarks/tasks.py): the
harness that enqueues and the runworker processes that run the tasks.

- BENCH_REDIS_URL: the Redis of the channel layer (and of the tasks' start
  records, see tasks.py).
- BENCH_TASK_CAPACITY: the capacity of the task channels (default: the
  layer's default, 100).
- BENCH_TASK_RESULTS=cache: results in Django's RedisCache (database 1 of
  that Redis) rather than in the layer's store.
"""

import os

SECRET_KEY = "benchmarks-only"
DEBUG = False
INSTALLED_APPS = ["django_fork"]
DATABASES = {}
USE_TZ = True
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
_options = {}
if os.environ.get("BENCH_TASK_CAPACITY"):
    _options["channel_capacity"] = {"tasks.*": int(os.environ["BENCH_TASK_CAPACITY"])}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "django_fork.channels.layers.redis.RedisChannelLayer",
        "LOCATION": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0"),
        "OPTIONS": _options,
    }
}
TASKS = {
    "default": {
        "BACKEND": "django_fork.channels.task_backend.ChannelTaskBackend",
    }
}
if os.environ.get("BENCH_TASK_RESULTS") == "cache":
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CHANNEL_LAYERS["default"]["LOCATION"].replace("/0", "/1"),
        }
    }
    TASKS["default"]["OPTIONS"] = {"cache": "default"}
