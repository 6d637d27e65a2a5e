"""
Run an existing test suite over channels, unchanged.

ChannelDiscoverRunner is Django's DiscoverRunner plus one switch: the test
cases of the suite it builds get ChannelClient as self.client and
AsyncChannelClient as self.async_client wherever they use Django's default
Client and AsyncClient, so every request those clients make travels the
channel path. Use it as TEST_RUNNER, or for one run with "manage.py test
--testrunner".
"""

from django.test import AsyncClient, Client, SimpleTestCase
from django.test.runner import DiscoverRunner, ParallelTestSuite, RemoteTestRunner
from django.test.utils import iter_test_cases

from django_fork.test.client import AsyncChannelClient, ChannelClient

__all__ = [
    "ChannelDiscoverRunner",
    "ChannelRemoteTestRunner",
    "restore_clients",
    "use_channel_clients",
]


_SWITCHES = (
    ("client_class", Client, ChannelClient),
    ("async_client_class", AsyncClient, AsyncChannelClient),
)


def use_channel_clients(tests):
    """
    Make the test case classes in tests (a suite, or an iterable of suites
    and cases) use ChannelClient and AsyncChannelClient instead of Django's
    default clients (in every worker process, for a ParallelTestSuite).
    Return what changed, for restore_clients().

    Only Django's own Client and AsyncClient are replaced: a test case with a
    client_class of its own keeps it, and a Client() that a test builds
    itself stays a Client. The attributes are set on the classes because
    SimpleTestCase._pre_setup() is a classmethod that builds self.client from
    cls.client_class.
    """
    if isinstance(tests, ParallelTestSuite):
        tests.runner_class = ChannelRemoteTestRunner
    changed = []
    seen = set()
    for test in iter_test_cases(tests):
        cls = type(test)
        if cls in seen or not issubclass(cls, SimpleTestCase):
            continue
        seen.add(cls)
        for name, default, replacement in _SWITCHES:
            if getattr(cls, name) is default:
                changed.append((cls, name, cls.__dict__.get(name, _MISSING)))
                setattr(cls, name, replacement)
    return changed


def restore_clients(changed):
    """Undo use_channel_clients()."""
    for cls, name, previous in reversed(changed):
        if previous is _MISSING:
            delattr(cls, name)
        else:
            setattr(cls, name, previous)


_MISSING = object()


class ChannelRemoteTestRunner(RemoteTestRunner):
    """
    Run a parallel runner's subsuite with channel clients. Under the "spawn"
    start method a worker process imports the test classes afresh, without
    the attributes the parent set.
    """

    def run(self, test):
        use_channel_clients(test)
        return super().run(test)


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
            self.log(
                "Test clients of %d test class(es) send their requests over the "
                "channel path." % len({cls for cls, _, _ in self._changed_clients})
            )
        return suite

    def teardown_test_environment(self, **kwargs):
        try:
            restore_clients(self._changed_clients)
            self._changed_clients = []
        finally:
            super().teardown_test_environment(**kwargs)
