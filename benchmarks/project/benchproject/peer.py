"""
The peer: the same views served by Channels 4.3 with channels_redis 4.3.

Channels 4 serves HTTP in-process: its ProtocolTypeRouter hands "http"
scopes to Django's ASGIHandler, and the channel layer is not on the path.
That is what a Channels 4 project runs (inprocess_application below, under
daphne). To compare like with like the channel path's design, interface ->
layer -> worker process, is also built here the way a Channels 4 user would
build it (application below): an AsyncHttpConsumer in the server process
forwards each request over channels_redis to the "bench-http" channel, where
a SyncConsumer in a "manage.py runworker bench-http" process runs Django's
synchronous handler and sends the response back to the consumer's channel.
Channels 1.x did exactly this; Channels 2+ dropped it.
"""

import io
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")

import django  # noqa: E402

django.setup(set_prefix=False)

from asgiref.sync import async_to_sync  # noqa: E402
from channels.consumer import SyncConsumer  # noqa: E402
from channels.exceptions import StopConsumer  # noqa: E402
from channels.generic.http import AsyncHttpConsumer  # noqa: E402
from channels.routing import ChannelNameRouter, ProtocolTypeRouter  # noqa: E402
from django.core import signals  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.handlers.asgi import ASGIRequest  # noqa: E402
from django.core.handlers.base import BaseHandler  # noqa: E402
from django.urls import set_script_prefix  # noqa: E402

WORKER_CHANNEL = "bench-http"
_SCOPE_KEYS = (
    "http_version",
    "method",
    "scheme",
    "path",
    "raw_path",
    "query_string",
    "root_path",
    "headers",
    "client",
    "server",
)


class ForwardConsumer(AsyncHttpConsumer):
    """Send the request to a worker; relay the worker's response."""

    async def http_request(self, message):
        self.body.append(message.get("body", b""))
        if message.get("more_body"):
            return
        scope = {key: self.scope.get(key) for key in _SCOPE_KEYS}
        scope["headers"] = [list(header) for header in scope["headers"]]
        for key in ("client", "server"):
            scope[key] = list(scope[key]) if scope[key] else None
        await self.channel_layer.send(
            WORKER_CHANNEL,
            {
                "type": "django.request",
                "reply_channel": self.channel_name,
                "scope": scope,
                "body": b"".join(self.body),
            },
        )

    async def django_response(self, message):
        await self.send_response(
            message["status"], message["body"], headers=message["headers"]
        )
        raise StopConsumer


class DjangoConsumer(SyncConsumer):
    """Run a forwarded request through Django's synchronous handler."""

    handler = None

    def django_request(self, message):
        if DjangoConsumer.handler is None:
            handler = BaseHandler()
            handler.load_middleware()
            DjangoConsumer.handler = handler
        scope = dict(message["scope"], type="http")
        set_script_prefix(scope.get("root_path", "") or "")
        signals.request_started.send(sender=type(self), scope=scope)
        request = ASGIRequest(scope, io.BytesIO(message["body"]))
        response = self.handler.get_response(request)
        headers = [
            [name.encode("ascii"), value.encode("latin1")]
            for name, value in response.items()
        ]
        for cookie in response.cookies.values():
            headers.append([b"Set-Cookie", cookie.output(header="").encode().strip()])
        body = response.content
        response.close()
        async_to_sync(self.channel_layer.send)(
            message["reply_channel"],
            {
                "type": "django.response",
                "status": response.status_code,
                "headers": headers,
                "body": body,
            },
        )


#: daphne + Channels' router + Django's ASGIHandler (the layer configured,
#: not on the path): how Channels 4 serves HTTP.
inprocess_application = ProtocolTypeRouter({"http": get_asgi_application()})

#: daphne + AsyncHttpConsumer -> channels_redis -> runworker's SyncConsumer.
application = ProtocolTypeRouter(
    {
        "http": ForwardConsumer.as_asgi(),
        "channel": ChannelNameRouter({WORKER_CHANNEL: DjangoConsumer.as_asgi()}),
    }
)
