#!/usr/bin/env python
"""Django's command-line utility for the django_fork demo project."""

import os
import sys
from importlib.util import find_spec


def main():
    """Run administrative tasks."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
    if find_spec("django_fork") is None:
        # Not installed: use the checkout this demo lives in, so the demo
        # runs from a clone with only Django and uvicorn installed.
        sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        from django.core.management import execute_from_command_line
    except ImportError as exc:
        raise ImportError(
            "Couldn't import Django. Are you sure it's installed and "
            "available on your PYTHONPATH environment variable? Did you "
            "forget to activate a virtual environment?"
        ) from exc
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
