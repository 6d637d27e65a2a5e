"""The run-wide switch: ChannelDiscoverRunner and its --channels option."""

import io
import os
import subprocess
import sys
import unittest

from django.test import Client, SimpleTestCase

from django_fork.test import ChannelDiscoverRunner
from django_fork.test.runner import (
    ChannelRemoteTestRunner,
    restore_clients,
    use_channel_clients,
)
from django_fork.test.transport import channel_transport

from . import switched_suite
from .switched_suite import CustomClient, CustomClientTests, StockTests

REPO_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)


class UseChannelClientsTests(SimpleTestCase):
    def test_switch_and_restore(self):
        suite = unittest.defaultTestLoader.loadTestsFromModule(switched_suite)
        self.assertIsNone(channel_transport())
        changed = use_channel_clients(suite)
        try:
            self.assertEqual(channel_transport(), "default")
            # The test cases' classes are left alone.
            self.assertIs(StockTests.client_class, Client)
            self.assertIs(CustomClientTests.client_class, CustomClient)
        finally:
            restore_clients(changed)
        self.assertIsNone(channel_transport())

    def test_parallel_workers_switch_too(self):
        from django.test.runner import ParallelTestSuite

        suite = ParallelTestSuite([], 2)
        restore_clients(use_channel_clients(suite))
        self.assertIs(suite.runner_class, ChannelRemoteTestRunner)


class ChannelDiscoverRunnerTests(SimpleTestCase):
    def run_suite(self, channels):
        runner = ChannelDiscoverRunner(verbosity=0, channels=channels)
        suite = runner.build_suite(["channel_test_utils.switched_suite"])
        switched_suite.results.clear()
        stream = io.StringIO()
        try:
            result = unittest.TextTestRunner(stream=stream, verbosity=0).run(suite)
        finally:
            restore_clients(runner._changed_clients)
        self.assertTrue(result.wasSuccessful(), stream.getvalue())
        return sorted(switched_suite.results)

    def test_channels_on(self):
        """Every client goes over channels: its own class, one a test built."""
        self.assertEqual(
            self.run_suite(channels=True),
            [
                "ChannelRequest",
                "ChannelRequest",
                "Client() ChannelRequest",
                "CustomClient ChannelRequest",
            ],
        )

    def test_channels_off(self):
        self.assertEqual(
            self.run_suite(channels=False),
            [
                "ASGIRequest",
                "Client() WSGIRequest",
                "CustomClient WSGIRequest",
                "WSGIRequest",
            ],
        )

    def test_no_channels_option(self):
        import argparse

        parser = argparse.ArgumentParser()
        ChannelDiscoverRunner.add_arguments(parser)
        self.assertIs(parser.parse_args([]).channels, True)
        self.assertIs(parser.parse_args(["--no-channels"]).channels, False)


class RuntestsChannelsOptionTests(SimpleTestCase):
    def test_runtests_channels(self):
        """runtests.py --channels sends a stock test's requests as messages."""
        process = subprocess.run(
            [
                sys.executable,
                os.path.join(REPO_ROOT, "runtests.py"),
                "--channels",
                "channel_test_utils.switched_suite.StockTests",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "SWITCHED_SUITE_PRINT": "1"},
        )
        self.assertEqual(process.returncode, 0, process.stdout + process.stderr)
        self.assertEqual(process.stdout.count("request class: ChannelRequest"), 2)
        self.assertTrue(process.stdout.endswith("2 passed, 0 failed\n"))
