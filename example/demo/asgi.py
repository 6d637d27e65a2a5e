"""
The demo project's interface application, for the channel path.

Any ASGI server can host it, e.g. ``uvicorn demo.asgi:application``. It relays
each HTTP request to the channel layer; ``manage.py runworker`` processes
(sharing a cross-process layer such as Redis) run the views. For one process
with the in-memory layer, use ``manage.py runstack`` instead.
"""

import os

from django_fork.channels.interface import get_interface_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

application = get_interface_application()
