"""
pytest configuration of the demo's tests (pytest-django; pytest.ini names
the settings).

* DemoPagesTests.test_info checks that the view saw the WSGI path's request,
  so it stays off the channel path under --channels.
* Tests without a database run first. pytest-django refuses any use of a
  database connection in them, even checking one that a database test left
  open, which close_old_connections() does on request_finished when a test
  closes a response itself (DemoPagesTests.test_download). Django's runner
  allows that check, and runs them last.
"""

import pytest
from django.test import TransactionTestCase

WSGI_PATH_TESTS = {"shop/tests.py::DemoPagesTests::test_info"}


def _uses_database(item):
    cls = getattr(item, "cls", None)
    if cls is not None and issubclass(cls, TransactionTestCase):
        return True
    return item.get_closest_marker("django_db") is not None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if item.nodeid in WSGI_PATH_TESTS:
            item.add_marker(pytest.mark.channels(False))
    items.sort(key=_uses_database)
