"""
The WebSocket consumers of benchmarks/websockets.py, as the channel path
runs them (CHANNEL_ROUTING with BENCH_WS=1): an echo, and a broadcast to the
group every socket of /ws/group/ joins. benchproject/ws_peer.py has the same
logic as Channels 4.3 consumers, benchproject/ws_floor.py as a bare ASGI app.
"""

from django.urls import path

from django_fork.channels.consumer import WebsocketConsumer

GROUP = "bench"


class Echo(WebsocketConsumer):
    """Send every frame back."""

    def receive(self, text_data=None, bytes_data=None):
        self.send(text_data=text_data, bytes_data=bytes_data)


class Broadcast(WebsocketConsumer):
    """Join GROUP; send every frame to the whole group."""

    groups = (GROUP,)

    def receive(self, text_data=None, bytes_data=None):
        self.group_send(GROUP, text_data=text_data, bytes_data=bytes_data)


websocket_urlpatterns = [
    path("ws/echo/", Echo.as_consumer()),
    path("ws/group/", Broadcast.as_consumer()),
]
