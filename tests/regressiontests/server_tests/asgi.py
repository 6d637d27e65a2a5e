"""The interface application, as a project's asgi.py exposes it."""

from django_fork.channels.interface import get_interface_application

application = get_interface_application()
