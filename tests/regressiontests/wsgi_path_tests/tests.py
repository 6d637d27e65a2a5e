"""
An existing project upgrades with no code change: its wsgi.py runs on the raw
WSGI path, through stock Django's WSGIHandler, and no channel code is loaded.
"""

import json
import os
import subprocess
import sys

from django.test import SimpleTestCase

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))


def probe(*args, **env):
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([os.path.join(HERE, "stock_project"), REPO]),
        "DJANGO_SETTINGS_MODULE": "stockproject.settings",
        **env,
    }
    environment.pop("WITH_DJANGO_FORK_APP", None)
    environment.update(env)
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "probe.py"), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode:
        raise AssertionError(result.stderr)
    return json.loads(result.stdout)


class StockProjectTests(SimpleTestCase):
    def test_unchanged_project_with_django_fork_installed(self):
        """With django_fork installed, the project runs as on stock Django."""
        served = probe()
        self.assertEqual(served["body"], "GET / visits=1")
        self.assertEqual(served["cookies"], 1)
        self.assertEqual(served["handler"], "django.core.handlers.wsgi.WSGIHandler")
        self.assertEqual(
            served["request_class"], "django.core.handlers.wsgi.WSGIRequest"
        )
        self.assertEqual(served["django_fork_modules"], [])

    def test_unchanged_project_on_asgi(self):
        """The project's asgi.py runs under uvicorn as on stock Django."""
        served = probe("asgi")
        self.assertEqual(served["body"], "GET / visits=1")
        self.assertEqual(served["cookies"], 1)
        self.assertEqual(served["handler"], "django.core.handlers.asgi.ASGIHandler")
        self.assertEqual(
            served["request_class"], "django.core.handlers.asgi.ASGIRequest"
        )
        self.assertEqual(served["channel_modules"], [])

    def test_wsgi_path_with_django_fork_app(self):
        """
        With "django_fork" in INSTALLED_APPS, WSGI requests still go straight
        to stock WSGIHandler, and no channel code is even imported.
        """
        served = probe(WITH_DJANGO_FORK_APP="1")
        self.assertEqual(served["body"], "GET / visits=1")
        self.assertEqual(served["handler"], "django.core.handlers.wsgi.WSGIHandler")
        # The system checks of the channel settings are imported at start-up,
        # as Django imports its own check modules; they import nothing of
        # the channel path.
        self.assertEqual(
            [
                name
                for name in served["channel_modules"]
                if name not in ("django_fork.core", "django_fork.core.checks")
                and name != "django_fork.core.checks.channels"
            ],
            [],
        )
        self.assertIn("django_fork.apps", served["django_fork_modules"])

    def test_no_django_module_is_patched(self):
        """Importing every django_fork module leaves Django's objects alone."""
        code = """
import django.core.handlers.wsgi as wsgi, django.core.handlers.base as base
import django.http.request as request, django.core.handlers.asgi as asgi
before = {m.__name__: dict(vars(m)) for m in (wsgi, base, request, asgi)}
import django
from django.conf import settings
settings.configure(INSTALLED_APPS=["django_fork"])
django.setup()
import django_fork.channels.interface, django_fork.channels.worker
import django_fork.management.commands.runstack
import django_fork.management.commands.runworker
after = {m.__name__: dict(vars(m)) for m in (wsgi, base, request, asgi)}
changed = [
    "%s.%s" % (name, key)
    for name in before
    for key in set(before[name]) | set(after[name])
    if before[name].get(key) is not after[name].get(key)
]
print(changed)
"""
        result = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONPATH": REPO},
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.stdout.strip(), "[]", result.stderr)
