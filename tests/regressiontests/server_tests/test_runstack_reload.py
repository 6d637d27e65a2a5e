"""manage.py runstack --reload: Django's autoreloader around the stack."""

import os
import shutil
import sys
import tempfile
import time

from django.test import SimpleTestCase
from websockets.sync.client import connect

from .servers import ServerProcess, environment, free_port

URLS = """\
from django.http import HttpResponse
from django.urls import path

urlpatterns = [path("version/", lambda request: HttpResponse("%s"))]
"""


class RunstackReloadTests(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.directory = tempfile.mkdtemp(prefix="runstack-reload-tests-")
        cls.addClassCleanup(shutil.rmtree, cls.directory)
        with open(os.path.join(cls.directory, "reload_settings.py"), "w") as f:
            f.write("from server_tests.settings import *  # NOQA\n")
            f.write('ROOT_URLCONF = "reload_urls"\n')
        cls.write_urls("1")
        cls.port = free_port()
        env = environment(DJANGO_SETTINGS_MODULE="reload_settings")
        env["PYTHONPATH"] = os.pathsep.join([cls.directory, env["PYTHONPATH"]])
        cls.server = ServerProcess(
            [
                sys.executable,
                "-m",
                "django",
                "runstack",
                "--reload",
                "--bind",
                "127.0.0.1:%d" % cls.port,
                "--workers",
                "2",
            ],
            port=cls.port,
            env=env,
        )
        cls.addClassCleanup(cls.server.cleanup)

    @classmethod
    def write_urls(cls, version):
        with open(os.path.join(cls.directory, "reload_urls.py"), "w") as f:
            f.write(URLS % version)

    def test_reload(self):
        """A change to a project file restarts the stack with the change."""
        self.assertEqual(self.server.request("GET", "/version/")[2], b"1")
        deadline = time.monotonic() + 30
        body = None
        while time.monotonic() < deadline and body != b"2":
            # Written again until the autoreloader sees it: it misses a
            # change made before its first look at the file's mtime, which
            # on a loaded machine may come after the stack serves its first
            # request.
            if "reload_urls.py changed, reloading." not in self.server.output:
                self.write_urls("2")
            time.sleep(1)
            try:
                body = self.server.request("GET", "/version/", timeout=5)[2]
            except OSError:
                continue
        self.assertEqual(body, b"2", self.server.output)
        self.assertIn("reload_urls.py changed, reloading.", self.server.output)
        # WebSockets work after the restart too.
        url = "ws://127.0.0.1:%d/ws/echo/" % self.port
        with connect(url, open_timeout=10) as websocket:
            websocket.send("again")
            self.assertEqual(websocket.recv(10), "echo:again")
