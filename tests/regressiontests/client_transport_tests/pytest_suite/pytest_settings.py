"""Settings of the pytest suite: runtests.py's, for the apps it uses."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))

from runtests import get_settings  # NOQA: E402

globals().update(
    get_settings(["client_transport_tests", "channel_test_utils", "websocket_tests"])
)
ROOT_URLCONF = "client_transport_tests.urls"
CHANNEL_ROUTING = "websocket_tests.routing"
SESSION_ENGINE = "django.contrib.sessions.backends.db"
