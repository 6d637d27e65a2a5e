"""
Static files on the channel path, over sockets: runstack --static serves
STATIC_ROOT from the interface, so the admin has its CSS.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

from django.test import SimpleTestCase

from .servers import ServerProcess, environment, free_port

SETTINGS = """\
from server_tests.settings import *  # NOQA

INSTALLED_APPS = INSTALLED_APPS + [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": %(database)r}
}
ROOT_URLCONF = "static_project_urls"
STATIC_URL = "/static/"
STATIC_ROOT = %(static_root)r
"""
URLS = """\
from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
"""


class AdminProjectMixin:
    """An admin project in a temporary directory, collectstatic run."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.directory = tempfile.mkdtemp(prefix="static-tests-")
        cls.addClassCleanup(shutil.rmtree, cls.directory)
        with open(os.path.join(cls.directory, "static_project.py"), "w") as f:
            f.write(
                SETTINGS
                % {
                    "database": os.path.join(cls.directory, "db.sqlite3"),
                    "static_root": os.path.join(cls.directory, "static"),
                }
            )
            f.write(cls.extra_settings)
        with open(os.path.join(cls.directory, "static_project_urls.py"), "w") as f:
            f.write(URLS)
        cls.env = environment(DJANGO_SETTINGS_MODULE="static_project")
        cls.env["PYTHONPATH"] = os.pathsep.join([cls.directory, cls.env["PYTHONPATH"]])
        subprocess.run(
            [sys.executable, "-m", "django", "collectstatic", "--noinput", "-v", "0"],
            env=cls.env,
            check=True,
            timeout=120,
        )
        cls.port = free_port()
        cls.server = ServerProcess(
            [
                sys.executable,
                "-m",
                "django",
                "runstack",
                "--bind",
                "127.0.0.1:%d" % cls.port,
                "--workers",
                "2",
                *cls.runstack_args,
            ],
            port=cls.port,
            env=cls.env,
        )
        cls.addClassCleanup(cls.server.cleanup)

    def admin_stylesheets(self):
        status, _, body = self.server.request("GET", "/admin/login/")
        self.assertEqual(status, 200, body[:2000])
        links = re.findall(rb'<link rel="stylesheet" href="([^"]+)"', body)
        self.assertIn(b"/static/admin/css/base.css", links)
        return [link.decode() for link in links]

    def test_admin_login_page_has_its_css(self):
        for link in self.admin_stylesheets():
            with self.subTest(link=link):
                status, headers, body = self.server.request("GET", link)
                self.assertEqual(status, 200)
                headers = {name.lower(): value for name, value in headers}
                self.assertTrue(headers["content-type"].startswith("text/css"))
                with open(
                    os.path.join(self.directory, link.replace("/", os.sep, 2)[1:]),
                    "rb",
                ) as f:
                    self.assertEqual(body, f.read())


class RunstackStaticTests(AdminProjectMixin, SimpleTestCase):
    extra_settings = ""
    runstack_args = ["--static"]

    def test_validators_and_ranges(self):
        _, headers, _ = self.server.request("GET", "/static/admin/css/base.css")
        headers = {name.lower(): value for name, value in headers}
        status, _, body = self.server.request(
            "GET",
            "/static/admin/css/base.css",
            headers={"If-None-Match": headers["etag"]},
        )
        self.assertEqual((status, body), (304, b""))
        status, headers, body = self.server.request(
            "GET", "/static/admin/css/base.css", headers={"Range": "bytes=0-9"}
        )
        self.assertEqual((status, len(body)), (206, 10))

    def test_without_static_root(self):
        """--static without STATIC_ROOT is one line of error."""
        env = dict(self.env, DJANGO_SETTINGS_MODULE="server_tests.settings")
        result = subprocess.run(
            [sys.executable, "-m", "django", "runstack", "--static", "--bind", ":0"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr.strip(),
            "CommandError: Serving static files from the interface needs "
            "STATIC_ROOT, filled by 'manage.py collectstatic'.",
        )


class RunstackNoStaticTests(AdminProjectMixin, SimpleTestCase):
    """Without --static (or WhiteNoise), the admin has no CSS."""

    extra_settings = ""
    runstack_args = []
    test_admin_login_page_has_its_css = None

    def test_no_css(self):
        self.admin_stylesheets()
        status, _, _ = self.server.request("GET", "/static/admin/css/base.css")
        self.assertEqual(status, 404)
