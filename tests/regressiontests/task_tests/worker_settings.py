"""
Settings of the runworker processes that the task tests start: the layer on
the test's redis-server (TASK_TESTS_REDIS_URL), with the options in
TASK_TESTS_LAYER_OPTIONS (JSON).
"""

import json
import os

SECRET_KEY = "task-tests"
INSTALLED_APPS = ["django_fork"]
DATABASES = {}
USE_TZ = True
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "django_fork.channels.layers.redis.RedisChannelLayer",
        "LOCATION": os.environ.get("TASK_TESTS_REDIS_URL"),
        "OPTIONS": json.loads(os.environ.get("TASK_TESTS_LAYER_OPTIONS", "{}")),
    }
}
TASKS = {
    "default": {
        "BACKEND": "django_fork.channels.task_backend.ChannelTaskBackend",
        "QUEUES": ["default", "images"],
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
