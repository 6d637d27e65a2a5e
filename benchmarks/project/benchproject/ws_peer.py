"""
The consumers of benchproject/ws.py as Channels 4.3 runs them: daphne,
Channels' sync WebsocketConsumer, groups on channels_redis 4.3.

    daphne benchproject.ws_peer:application     (BENCH_PEER=1, BENCH_REDIS_URL)
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")

import django  # noqa: E402

django.setup(set_prefix=False)

from asgiref.sync import async_to_sync  # noqa: E402
from channels.generic.websocket import WebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

GROUP = "bench"


class Echo(WebsocketConsumer):
    def receive(self, text_data=None, bytes_data=None):
        self.send(text_data=text_data, bytes_data=bytes_data)


class Broadcast(WebsocketConsumer):
    groups = [GROUP]

    def receive(self, text_data=None, bytes_data=None):
        async_to_sync(self.channel_layer.group_send)(
            GROUP, {"type": "bench.frame", "text": text_data, "bytes": bytes_data}
        )

    def bench_frame(self, event):
        self.send(text_data=event["text"], bytes_data=event["bytes"])


application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                path("ws/echo/", Echo.as_asgi()),
                path("ws/group/", Broadcast.as_asgi()),
            ]
        )
    }
)
