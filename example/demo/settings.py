"""
Settings of the django_fork demo project.

A stock Django 5.2 settings module plus "django_fork" in INSTALLED_APPS,
which adds the runstack and runworker commands and serves the channel path
from runserver. CHANNEL_LAYERS is not set, so the default alias is the
in-memory layer: ``manage.py runstack`` serves the
site from one process with no Redis.

Sessions live in the database: run ``manage.py migrate`` once (``make
demo`` does). With DEMO_REDIS_URL set (``make demo-redis``), the layer and
the sessions live in Redis instead.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# A fixed key is fine for a demo on 127.0.0.1; set DJANGO_SECRET_KEY anywhere
# else.
SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY",
    "django-insecure-demo-key-for-local-use-only-1b6a0c5e7f3d",
)

DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"

ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    # First: its runserver (which serves the channel path) must win over
    # django.contrib.staticfiles' own.
    "django_fork",
    "django.contrib.admin",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "shop",
    "chat",
]

# WebSocket routes (and channel consumers) of the channel workers.
CHANNEL_ROUTING = "demo.routing"

# django-tasks @task functions run on the channel workers; results are kept in
# the channel layer's store, which all threads of runstack's single process
# (or, over Redis, all the processes) share.
TASKS = {
    "default": {
        "BACKEND": "django_fork.channels.task_backend.ChannelTaskBackend",
        "QUEUES": ["default"],
    }
}

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "demo.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DATABASE", BASE_DIR / "db.sqlite3"),
        # Worker threads write sessions at once: let a writer wait for the
        # lock rather than fail, and readers go on while it writes.
        "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"},
    }
}

# Sessions in the database ("make demo" runs migrate first). Channel sessions
# are sessions too, one per open socket: a local-memory cache would evict
# them past its 300 entries, under their sockets.
SESSION_ENGINE = "django.contrib.sessions.backends.db"

# "make demo-redis" sets DEMO_REDIS_URL to its private redis-server: the
# channel layer and the cache (sessions, task results) live there, shared by
# the interface server and the worker processes.
DEMO_REDIS_URL = os.environ.get("DEMO_REDIS_URL")
if DEMO_REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "django_fork.channels.layers.redis.RedisChannelLayer",
            "LOCATION": DEMO_REDIS_URL + "/0",
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": DEMO_REDIS_URL + "/1",
        }
    }
    SESSION_ENGINE = "django.contrib.sessions.backends.cache"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# collectstatic's target, which "runstack --static" serves from the interface.
STATIC_ROOT = os.environ.get("DEMO_STATIC_ROOT", BASE_DIR / "var" / "static")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Uploads above 2.5 MB (Django's default) spool to temporary files; the
# channel path does the same with request bodies.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2621440

# The demo's own settings: the size of the generated download, where it is
# written, and the pause between the lines of the streaming page.
DEMO_DOWNLOAD_SIZE = 32 * 1024 * 1024
DEMO_DOWNLOAD_DIR = BASE_DIR / "var"
DEMO_STREAM_LINES = 20
DEMO_STREAM_DELAY = 0.25

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "simple": {
            "format": "{asctime} {levelname} {name}: {message}",
            "style": "{",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "simple"},
    },
    "loggers": {
        # The interface, the worker and runstack log at INFO: startup,
        # shutdown, dropped messages, abandoned responses.
        "django_fork": {
            "handlers": ["console"],
            "level": "INFO",
            "propagate": False,
        },
        "django.request": {
            "handlers": ["console"],
            "level": "WARNING",
            "propagate": False,
        },
    },
}
