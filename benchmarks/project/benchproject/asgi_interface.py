"""The branch's interface application (needs BENCH_FORK=1, BENCH_REDIS_URL)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")

from django_fork.channels.interface import get_interface_application  # noqa: E402

application = get_interface_application()
