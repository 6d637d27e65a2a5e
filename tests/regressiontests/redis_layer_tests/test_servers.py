"""The private redis-server processes of django.test.redis."""

import os
import unittest
from unittest import mock

import redis
from django.test import SimpleTestCase

from django_fork.test.redis import (
    RedisServer,
    RedisUnavailable,
    redis_server_path,
    require_redis,
)


class RedisServerTests(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        require_redis()
        super().setUpClass()

    def test_kill_and_restart_on_the_same_port(self):
        server = RedisServer().start()
        self.addCleanup(server.cleanup)
        self.assertNotEqual(server.port, 6379)
        client = redis.Redis.from_url(server.url)
        self.addCleanup(client.close)
        client.set("k", "v")
        port = server.port
        server.kill()
        self.assertFalse(server.running)
        with self.assertRaises(redis.ConnectionError):
            client.ping()
        server.restart()
        self.assertEqual(server.port, port)
        # Persistence is off: a restarted server is empty.
        self.assertIsNone(client.get("k"))

    def test_missing_redis_skips_but_fails_under_ci(self):
        with mock.patch.dict(os.environ, {"REDIS_SERVER": "/nonexistent/redis"}):
            self.assertIsNone(redis_server_path())
            with mock.patch.dict(os.environ, {"CI": "false"}):
                with self.assertRaises(unittest.SkipTest):
                    require_redis()
            with mock.patch.dict(os.environ, {"CI": "true"}):
                with self.assertRaises(RedisUnavailable):
                    require_redis()
