"""Django's own settings for SQLite with the counting runner, channels off."""

from test_sqlite import *  # NOQA: F401,F403 (Django's tests directory).

TEST_RUNNER = "upstream_runner.CountingStockRunner"
