"""
manage.py runserver: the channel path when the project uses it (with the
autoreloader), and Django's own server otherwise.
"""

import os
import re
import shutil
import tempfile
import time

import django
from django.test import SimpleTestCase
from websockets.sync.client import connect

from .servers import (
    ServerProcess,
    WebSocketOverSocketsMixin,
    environment,
    free_port,
    manage,
)

SETTINGS = """\
import os

from server_tests.settings import *  # NOQA

ROOT_URLCONF = "project.urls"
DEBUG = True
STATIC_URL = "/static/"
STATICFILES_DIRS = [os.path.join(os.path.dirname(os.path.dirname(__file__)), "static")]
LOGGING = {"version": 1, "disable_existing_loggers": False}
"""
URLS = """\
from django.http import HttpResponse
from django.urls import include, path

urlpatterns = [
    path("version/", lambda request: HttpResponse("%s")),
    path("", include("channel_path_tests.urls")),
]
"""

# The apps that give runserver the channel path.
CHANNEL_APPS = ["django_fork"]


class ProjectMixin:
    """A project in a temporary directory, served by runserver."""

    routing = "websocket_tests.routing"
    installed_apps = CHANNEL_APPS
    args = []

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.directory = tempfile.mkdtemp(prefix="runserver-tests-")
        cls.addClassCleanup(shutil.rmtree, cls.directory)
        package = os.path.join(cls.directory, "project")
        os.mkdir(package)
        with open(os.path.join(package, "__init__.py"), "w"):
            pass
        with open(os.path.join(package, "settings.py"), "w") as f:
            f.write(SETTINGS)
            f.write("CHANNEL_ROUTING = %r\n" % cls.routing)
            f.write("INSTALLED_APPS = %r\n" % cls.installed_apps)
        cls.write_urls("1")
        os.mkdir(os.path.join(cls.directory, "static"))
        with open(os.path.join(cls.directory, "static", "site.css"), "w") as f:
            f.write("body { color: teal; }\n")
        cls.port = free_port()
        cls.server = cls.start("127.0.0.1:%d" % cls.port, *cls.args)
        cls.addClassCleanup(cls.server.cleanup)

    @classmethod
    def start(cls, *args):
        env = environment(DJANGO_SETTINGS_MODULE="project.settings")
        env["PYTHONPATH"] = os.pathsep.join([cls.directory, env["PYTHONPATH"]])
        return ServerProcess(manage("runserver", *args), port=cls.port, env=env)

    @classmethod
    def write_urls(cls, version):
        path = os.path.join(cls.directory, "project", "urls.py")
        with open(path, "w") as f:
            f.write(URLS % version)


class ChannelServerMixin(ProjectMixin, WebSocketOverSocketsMixin):
    def test_banner(self):
        # Django 6.1's banner names the server: the channel path's is ASGI.
        # It prints the banner once the port is bound, so it may come a
        # moment after the port opens.
        server = "ASGI " if django.VERSION >= (6, 1) else ""
        banner = "Starting %sdevelopment server at http://127.0.0.1:%d/" % (
            server,
            self.port,
        )
        output = self.server.wait_for_output("Serving the channel path")
        self.assertIn(banner, output)
        self.assertIn("Serving the channel path", output)

    def test_streaming_response(self):
        status, _, body = self.server.request("GET", "/stream/?parts=10&size=100000")
        self.assertEqual((status, len(body)), (200, 10 * 100_002))

    def test_request_log(self):
        """Requests are logged as Django's development server logs them."""
        self.server.request("GET", "/hello/?name=log")
        self.server.request("GET", "/no-such-page/")
        pattern = r'^\[\d\d/\w{3}/\d{4} \d\d:\d\d:\d\d\] "GET %s HTTP/1.1" %d \d+$'
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            output = self.server.output
            if re.search(pattern % (r"/no-such-page/", 404), output, re.M):
                break
            time.sleep(0.1)
        self.assertRegex(
            output, re.compile(pattern % (r"/hello/\?name=log", 200), re.M)
        )
        self.assertRegex(output, re.compile(pattern % ("/no-such-page/", 404), re.M))

    def test_static_files_in_debug(self):
        """Static files are served in DEBUG, as staticfiles' runserver does."""
        status, _, body = self.server.request("GET", "/static/site.css")
        self.assertEqual((status, body), (200, b"body { color: teal; }\n"))


class RunserverWithRoutingTests(ChannelServerMixin, SimpleTestCase):
    """CHANNEL_ROUTING is set: runserver serves the channel path."""

    installed_apps = CHANNEL_APPS + ["django.contrib.staticfiles"]


class RunserverChannelsOptionTests(ChannelServerMixin, SimpleTestCase):
    """runserver --channels serves the channel path with no routing set."""

    routing = {}
    args = ["--channels"]
    installed_apps = CHANNEL_APPS + ["django.contrib.staticfiles"]

    def test_websocket_echo(self):
        # No routing: no WebSocket consumer either; the handshake is refused.
        with self.assertRaises(Exception):
            connect("ws://127.0.0.1:%d/ws/echo/" % self.port, open_timeout=10)

    test_websocket_refused = None

    def test_reload(self):
        """A change to a project file restarts the server with the change."""
        status, _, body = self.server.request("GET", "/version/")
        self.assertEqual((status, body), (200, b"1"))
        self.write_urls("2")
        deadline = time.monotonic() + 30
        body = None
        while time.monotonic() < deadline and body != b"2":
            time.sleep(0.5)
            try:
                _, _, body = self.server.request("GET", "/version/", timeout=5)
            except OSError:
                continue
        self.assertEqual(body, b"2", self.server.output)
        self.assertIn("changed, reloading.", self.server.output)
        # The reloaded server still serves the channel path.
        status, _, body = self.server.request("GET", "/stream/?parts=2&size=10")
        self.assertEqual((status, len(body)), (200, 2 * 12))
        self.assertEqual(self.server.output.count("Serving the channel path"), 2)


class RunserverStockTests(ProjectMixin, SimpleTestCase):
    """Without the opt-in, runserver is Django's, byte for byte."""

    routing = {}
    installed_apps = CHANNEL_APPS + ["django.contrib.staticfiles"]

    def stock_response(self, path):
        """Return the response of Django's runserver, without django_fork."""
        port = free_port()
        settings = os.path.join(self.directory, "project", "stock.py")
        with open(settings, "w") as f:
            f.write("from .settings import *  # NOQA\n")
            f.write("INSTALLED_APPS = ['django.contrib.staticfiles']\n")
        env = environment(DJANGO_SETTINGS_MODULE="project.stock")
        env["PYTHONPATH"] = os.pathsep.join([self.directory, env["PYTHONPATH"]])
        server = ServerProcess(
            manage("runserver", "--noreload", "127.0.0.1:%d" % port), port=port, env=env
        )
        try:
            return server.request("GET", path), port
        finally:
            server.cleanup()

    def test_same_response_as_stock(self):
        for path in ["/hello/?name=stock", "/stream/?parts=3&size=10", "/nothing/"]:
            with self.subTest(path=path):
                ours = self.server.request("GET", path)
                stock, port = self.stock_response(path)
                self.assertEqual(
                    without_date(ours, self.port), without_date(stock, port)
                )
                self.assertTrue(dict(stock[1])["Server"].startswith("WSGIServer/"))

    def test_no_websockets(self):
        with self.assertRaises(Exception):
            connect("ws://127.0.0.1:%d/ws/echo/" % self.port, open_timeout=10)
        self.assertNotIn("Serving the channel path", self.server.output)


def without_date(response, port):
    """Return the response without its Date header and its server's port."""
    status, headers, body = response
    headers = [(name, value) for name, value in headers if name != "Date"]
    return status, headers, body.replace(b":%d/" % port, b":PORT/")
