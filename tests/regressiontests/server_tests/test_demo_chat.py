"""
The demo's chat at a small scale: every socket in a room receives a
broadcast, on "make demo"'s stack (runstack, sessions in the database) and
on "make demo-redis"'s (uvicorn and two runworker processes over Redis).
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from django.test import SimpleTestCase

from django_fork.test.redis import require_redis

from .servers import ServerProcess, free_port
from .test_demo import EXAMPLE, demo_environment, demo_runstack

SOCKETS = 40


class FanoutMixin:
    def fanout(self, server):
        port = server.port
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "chat.fanout",
                "http://127.0.0.1:%d" % port,
                "--sockets",
                str(SOCKETS),
                "--timeout",
                "60",
            ],
            cwd=EXAMPLE,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.assertEqual(
            result.returncode,
            0,
            result.stdout + result.stderr + server.output,
        )
        return json.loads(result.stdout)


class DemoChatTests(FanoutMixin, SimpleTestCase):
    def setUp(self):
        directory = tempfile.TemporaryDirectory(prefix="demo-chat-")
        self.addCleanup(directory.cleanup)
        self.env = demo_environment()
        self.env["DEMO_DATABASE"] = os.path.join(directory.name, "db.sqlite3")
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
            cwd=EXAMPLE,
            env=self.env,
            check=True,
            timeout=120,
        )

    def test_broadcast_on_runstack(self):
        """make demo's stack: every socket of the room gets the message."""
        server = demo_runstack(self.env, "--workers", "4", "--no-access-log")
        self.addCleanup(server.cleanup)
        result = self.fanout(server)
        self.assertEqual((result["sockets"], result["received"]), (SOCKETS, SOCKETS))
        self.assertNotIn("Traceback", server.output)
        self.assertEqual(server.stop(), 0, server.output)


class DemoRedisChatTests(FanoutMixin, SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        require_redis()
        super().setUpClass()

    def test_broadcast_on_demo_redis(self):
        """make demo-redis: uvicorn and two workers over a private Redis."""
        self.env = demo_environment()
        port = free_port()
        server = ServerProcess(
            [
                sys.executable,
                os.path.join(EXAMPLE, "serve_redis.py"),
                "--port",
                str(port),
            ],
            port=port,
            env=self.env,
        )
        self.addCleanup(server.cleanup)
        # uvicorn listens before the workers serve: wait for a page.
        deadline = time.monotonic() + 60
        status = None
        while status != 200 and time.monotonic() < deadline:
            try:
                status = server.request("GET", "/", timeout=30)[0]
            except OSError:
                time.sleep(0.5)
        self.assertEqual(status, 200, server.output)
        result = self.fanout(server)
        self.assertEqual((result["sockets"], result["received"]), (SOCKETS, SOCKETS))
        self.assertEqual(server.stop(signal.SIGINT), 0, server.output)
        output = server.output
        self.assertIn("2 runworker processes over redis-server on port", output)
        self.assertNotIn("on port 6379.", output)
        self.assertNotIn("Traceback", output)
