"""Shared set-up of the Redis layer tests: private redis-server processes."""

import json
import os
import subprocess
import sys
import time
import warnings

import redis
from django.test import SimpleTestCase

from django_fork.channels.layers.redis import RedisChannelLayer
from django_fork.test.redis import RedisServer, require_redis


class RedisServersMixin:
    """
    Start `servers` private redis-server processes for the test case; every
    test starts on empty servers.
    """

    servers = 1

    @classmethod
    def setUpClass(cls):
        require_redis()
        super().setUpClass()
        cls.redis_servers = []
        for _ in range(cls.servers):
            server = RedisServer().start()
            cls.redis_servers.append(server)
            cls.addClassCleanup(server.cleanup)

    @property
    def urls(self):
        return [server.url for server in self.redis_servers]

    def warnings_as_errors(self):
        """
        Make every warning an error in the Redis tests: a deprecation in
        redis-py shows here, not in production logs.
        """
        self.enterContext(warnings.catch_warnings())
        warnings.simplefilter("error")
        # Python's default for ResourceWarning (ignore): it is raised in
        # __del__, where it cannot fail a test, only clutter its output.
        warnings.simplefilter("ignore", ResourceWarning)

    def setUp(self):
        super().setUp()
        self.warnings_as_errors()
        for server in self.redis_servers:
            server.start()
            client = redis.Redis.from_url(server.url)
            client.flushall()
            client.close()

    def make_layer(self, **options):
        location = self.urls[0] if len(self.urls) == 1 else self.urls
        options = {**self.layer_options, **options}
        return self.layer_class(location=location, **options)

    layer_class = RedisChannelLayer
    layer_options = {}

    def layer(self, **options):
        """Return a new layer on the servers, closed after the test."""
        layer = self.make_layer(**options)
        self.addCleanup(layer.close_sync)
        return layer


class RedisTestCase(RedisServersMixin, SimpleTestCase):
    pass


WORKERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workers.py")


def start_worker(command, url, *args, layer_options=None, log=None):
    """Start workers.py in a process of its own (see workers.py)."""
    env = dict(os.environ, LAYER_OPTIONS=json.dumps(layer_options or {}))
    return subprocess.Popen(
        [sys.executable, WORKERS, command, url, *args],
        env=env,
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )


def stop_process(process):
    if process.poll() is None:
        process.kill()
    process.wait(10)


def wait_for(predicate, timeout, interval=0.05):
    """Poll predicate until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
