"""The demo project: its own tests, and `make demo`'s command over a socket."""

import os
import subprocess
import sys

from django.test import SimpleTestCase

from .servers import REPO, ServerProcess, environment, free_port

EXAMPLE = os.path.join(REPO, "example")


def demo_environment():
    env = environment(DJANGO_SETTINGS_MODULE="demo.settings")
    env["PYTHONPATH"] = os.pathsep.join([EXAMPLE, REPO])
    return env


def demo_runstack(env, *options):
    """Start the demo's runstack command on a free loopback port."""
    port = free_port()
    return ServerProcess(
        [
            sys.executable,
            os.path.join(EXAMPLE, "manage.py"),
            "runstack",
            "--bind",
            "127.0.0.1:%d" % port,
            *options,
        ],
        port=port,
        env=env,
    )


class DemoProjectTests(SimpleTestCase):
    def test_demo_test_suite(self):
        result = subprocess.run(
            [sys.executable, "manage.py", "test", "--noinput"],
            cwd=EXAMPLE,
            env=demo_environment(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])

    def test_demo_served_by_runstack(self):
        server = demo_runstack(demo_environment(), "--workers", "2")
        self.addCleanup(server.cleanup)
        status, _, body = server.request("GET", "/", headers={"Host": "127.0.0.1"})
        self.assertEqual(status, 200, body[:2000])
        self.assertIn(b"<html", body.lower())
        self.assertEqual(server.stop(), 0, server.output)
