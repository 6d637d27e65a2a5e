"""
Run an existing test suite over channels, unchanged.

ChannelDiscoverRunner is Django's DiscoverRunner plus one switch: every test
client of the run (Django's Client and AsyncClient, every subclass, a client
a test builds itself) sends its requests over the channel path (see
django_fork.test.transport). Use it as TEST_RUNNER, or for one run with
"manage.py test --testrunner".
"""

from django.test.runner import DiscoverRunner, ParallelTestSuite, RemoteTestRunner

from django_fork.test.transport import enable_channel_transport

__all__ = [
    "ChannelDiscoverRunner",
    "ChannelRemoteTestRunner",
    "restore_clients",
    "use_channel_clients",
]


def use_channel_clients(tests):
    """
    Turn the channel switch on for the run of tests (in every worker process
    too, for a ParallelTestSuite). Return what restore_clients() needs to
    turn it back.
    """
    if isinstance(tests, ParallelTestSuite):
        tests.runner_class = ChannelRemoteTestRunner
    return [enable_channel_transport()]


def restore_clients(changed):
    """Undo use_channel_clients()."""
    for undo in reversed(changed):
        undo()


class ChannelRemoteTestRunner(RemoteTestRunner):
    """
    Run a parallel runner's subsuite with the switch on. Under the "spawn"
    start method a worker process imports everything afresh, without the
    switch the parent turned on.
    """

    def run(self, test):
        undo = enable_channel_transport()
        try:
            return super().run(test)
        finally:
            undo()


class ChannelDiscoverRunner(DiscoverRunner):
    """A DiscoverRunner whose test clients send requests over channels."""

    def __init__(self, *args, channels=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.channels = channels
        self._changed_clients = []

    @classmethod
    def add_arguments(cls, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--no-channels",
            action="store_false",
            dest="channels",
            help="Let test clients call views directly, as DiscoverRunner does.",
        )

    def setup_test_environment(self, **kwargs):
        super().setup_test_environment(**kwargs)
        # Reset channel layers when tests override CHANNEL_LAYERS, even if
        # "django_fork" is not in INSTALLED_APPS.
        from django_fork.test import signals  # NOQA

    def build_suite(self, *args, **kwargs):
        suite = super().build_suite(*args, **kwargs)
        if self.channels:
            self._changed_clients += use_channel_clients(suite)
            self.log("Test clients send their requests over the channel path.")
        return suite

    def teardown_test_environment(self, **kwargs):
        try:
            restore_clients(self._changed_clients)
            self._changed_clients = []
        finally:
            super().teardown_test_environment(**kwargs)
