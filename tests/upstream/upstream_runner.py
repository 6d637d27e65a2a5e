"""
Test runners for Django's own test suite that count what served each request.

Every request sends request_started; its sender is the handler that sent it:
django.test.client.ClientHandler or AsyncClientHandler (or a subclass) when a
test client makes a request, ChannelHandler (or a subclass) when the worker
serves one from an http.request message. With the switch on, a test client's
request sends both (the overlay's ClientHandler sends its signal before the
transport takes the request), so a test whose client requests outnumber its
channel requests had requests that did not go over channels. The runner
records, per test, the requests of each kind and prints them at the end, so a
run shows that requests went over channels rather than assuming it.
"""

import collections
import json
import os
import unittest

from django.core.signals import request_started
from django.test.client import AsyncClientHandler, ClientHandler
from django.test.runner import DiscoverRunner

from django_fork.core.handlers.channel import ChannelHandler
from django_fork.test.runner import ChannelDiscoverRunner

_current_test = ["(outside tests)"]
_requests = collections.defaultdict(collections.Counter)


def _kind(sender):
    if isinstance(sender, type) and issubclass(sender, ChannelHandler):
        return "channel"
    if isinstance(sender, type) and issubclass(
        sender, (ClientHandler, AsyncClientHandler)
    ):
        return "client"
    return getattr(sender, "__qualname__", repr(sender))


def _bypassed(counts):
    """Whether a test's client requests did not all go over channels."""
    return counts["client"] > counts["channel"] or set(counts) - {
        "channel",
        "client",
    }


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
                if _bypassed(counts)
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
