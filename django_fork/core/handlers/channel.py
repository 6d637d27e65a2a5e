"""
The channel transport's adapter to Django's request handling.

ChannelRequest is built from an http.request message, which is an ASGI HTTP
scope plus a reply channel: it maps the scope as ASGIRequest does
(ScopeRequest). ChannelHandler runs it through the same middleware and view
stack as WSGIHandler: the synchronous path, so a sync view costs what it
costs under WSGI. Neither touches the channel layer: the worker reads the
body and sends the response messages.
"""

from django.conf import settings

from django_fork.channels.codecs import DEFAULT_CHUNK_SIZE
from django_fork.core.handlers.base import BaseHandler
from django_fork.http.transport import ScopeRequest, scope_script_name


class ChannelRequest(ScopeRequest):
    """A request received as an http.request message."""

    def __init__(self, message, body_file):
        self.message = message
        super().__init__(message, body_file)


class ChannelHandler(BaseHandler):
    """Run http.request messages through Django's synchronous stack."""

    request_class = ChannelRequest

    def __init__(self):
        super().__init__()
        self.load_middleware()
        #: Bytes of response body per message (the CHANNEL_CHUNK_SIZE setting),
        #: and of a FileResponse's blocks.
        self.chunk_size = getattr(settings, "CHANNEL_CHUNK_SIZE", DEFAULT_CHUNK_SIZE)

    def __call__(self, message, body_file):
        """Return the response to an http.request message and its body."""
        self.start_request(scope_script_name(message), scope=message)
        return self.respond(message, body_file)
