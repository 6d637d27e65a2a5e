"""
Settings for Django's own test suite with every test client over channels.

Django's settings for SQLite (tests/test_sqlite.py of the source release)
plus TEST_RUNNER: the channel switch, and counting of the requests each path
served. Django's runtests.py sets INSTALLED_APPS, MIDDLEWARE and the rest.
With UPSTREAM_REDIS_URL set, the requests go over a Redis layer there instead
of the default in-memory layer.
"""

import os

from test_sqlite import *  # NOQA: F401,F403 (Django's tests directory).

TEST_RUNNER = "upstream_runner.CountingChannelRunner"

if os.environ.get("UPSTREAM_REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "django_fork.channels.layers.redis.RedisChannelLayer",
            "LOCATION": os.environ["UPSTREAM_REDIS_URL"],
            "OPTIONS": {"prefix": "upstream-tests"},
        }
    }
