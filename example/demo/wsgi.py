"""
WSGI config for the demo project: the stock Django path, untouched.

Serve it with any WSGI server, e.g. ``gunicorn demo.wsgi``.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

application = get_wsgi_application()
