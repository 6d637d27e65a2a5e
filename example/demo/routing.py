"""Channel routing of the demo: WebSocket paths to consumers."""

from chat.consumers import ChatConsumer
from django.urls import path

websocket_urlpatterns = [
    path("ws/chat/<slug:room>/", ChatConsumer.as_consumer()),
]
