"""Django's own ASGIHandler, as a stock project's asgi.py serves it."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")

application = get_asgi_application()
