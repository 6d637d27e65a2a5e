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
        port = free_port()
        server = ServerProcess(
            [
                sys.executable,
                os.path.join(EXAMPLE, "manage.py"),
                "runstack",
                "--bind",
                "127.0.0.1:%d" % port,
                "--workers",
                "2",
            ],
            port=port,
            env=demo_environment(),
        )
        self.addCleanup(server.cleanup)
        status, _, body = server.request("GET", "/", headers={"Host": "127.0.0.1"})
        self.assertEqual(status, 200, body[:2000])
        self.assertIn(b"<html", body.lower())
        self.assertEqual(server.stop(), 0, server.output)
