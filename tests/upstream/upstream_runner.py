"""
Test runners for Django's own test suite that count what served each request.

Every request a test client makes sends request_started; its sender is the
handler that served it: ChannelHandler (or a subclass) on the channel path,
django.test.client.ClientHandler or AsyncClientHandler when a test built a
Client() of its own. The runner records, per test, the requests of each kind
and prints them at the end, so a run shows that requests went over channels
rather than assuming it.
"""

import collections
import json
import os
import unittest

from django.core.signals import request_started
from django.test.runner import DiscoverRunner

from django_fork.core.handlers.channel import ChannelHandler
from django_fork.test.runner import ChannelDiscoverRunner

_current_test = ["(outside tests)"]
_requests = collections.defaultdict(collections.Counter)


def _kind(sender):
    if isinstance(sender, type) and issubclass(sender, ChannelHandler):
        return "channel"
    return getattr(sender, "__qualname__", repr(sender))


def _count_request(sender, **kwargs):
    _requests[_current_test[0]][_kind(sender)] += 1


class _TrackingResult(unittest.TextTestResult):
    def startTest(self, test):
        _current_test[0] = test.id()
        super().startTest(test)


class _CountingMixin:
    def get_resultclass(self):
        return super().get_resultclass() or _TrackingResult

    def setup_test_environment(self, **kwargs):
        super().setup_test_environment(**kwargs)
        request_started.connect(_count_request, dispatch_uid="upstream-count")

    def teardown_test_environment(self, **kwargs):
        request_started.disconnect(dispatch_uid="upstream-count")
        super().teardown_test_environment(**kwargs)
        totals = collections.Counter()
        for counts in _requests.values():
            totals.update(counts)
        report = {
            "totals": dict(totals),
            "not_channel": {
                test: dict(counts)
                for test, counts in sorted(_requests.items())
                if set(counts) - {"channel"}
            },
        }
        path = os.environ.get("UPSTREAM_REQUESTS_REPORT")
        if path:
            with open(path, "w") as f:
                json.dump(report, f, indent=2, sort_keys=True)
        print("Requests by handler: %s" % json.dumps(dict(totals), sort_keys=True))


class CountingChannelRunner(_CountingMixin, ChannelDiscoverRunner):
    """ChannelDiscoverRunner that counts requests per handler."""


class CountingStockRunner(_CountingMixin, DiscoverRunner):
    """DiscoverRunner that counts requests per handler (the baseline)."""
