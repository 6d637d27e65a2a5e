"""
The pytest plugin: the pytest suite in pytest_suite/ runs with pytest and
pytest-django in a subprocess, without and with --channels.
"""

import os
import re
import subprocess
import sys
import unittest

from django.test import SimpleTestCase

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = os.path.join(HERE, "pytest_suite")
EXAMPLE = os.path.join(HERE, "..", "..", "..", "example")

try:
    import pytest_django  # NOQA: F401
except ImportError:
    pytest_django = None


@unittest.skipIf(
    pytest_django is None and os.environ.get("CI") != "true",
    "pytest-django is not installed",
)
class PytestPluginTests(SimpleTestCase):
    def run_pytest(self, *args):
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DJANGO_SETTINGS_MODULE", "PYTEST_ADDOPTS")
        }
        process = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-c", "pytest.ini", *args],
            cwd=SUITE,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = process.stdout + process.stderr
        self.assertEqual(process.returncode, 0, output)
        return output

    def test_channels_option(self):
        output = self.run_pytest("--channels")
        self.assertRegex(output, r"\b10 passed\b")

    def test_without_channels_option(self):
        output = self.run_pytest()
        self.assertRegex(output, r"\b10 passed\b")

    def test_options_are_registered(self):
        output = self.run_pytest("--help")
        self.assertIn("--channels", output)
        self.assertTrue(
            re.search(r"--channel-layer-backend=\{inmemory,redis\}", output)
        )


@unittest.skipIf(
    pytest_django is None and os.environ.get("CI") != "true",
    "pytest-django is not installed",
)
class DemoUnderPytestTests(SimpleTestCase):
    def test_demo_tests_over_channels(self):
        """The demo project's tests pass under pytest --channels."""
        process = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
            + ["--channels"],
            cwd=EXAMPLE,
            env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = process.stdout + process.stderr
        self.assertEqual(process.returncode, 0, output)
        self.assertRegex(output, r"\b\d+ passed\b")
        self.assertNotRegex(output, r"\b(failed|error|skipped)\b")
