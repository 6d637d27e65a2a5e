"""WebSocket routes whose consumers are all sync: served in threads."""

from django.urls import include, path

from . import consumers

websocket_urlpatterns = [
    path("ws/echo/", consumers.EchoConsumer.as_consumer()),
    path("ws/refuse/", consumers.RefusingConsumer.as_consumer()),
    path("ws/order/", consumers.OrderConsumer.as_consumer()),
    path("ws/fail/", consumers.FailingConsumer.as_consumer()),
    path("ws/count/", consumers.CountingConsumer.as_consumer()),
    path("ws/two/", consumers.TwoFramesConsumer.as_consumer()),
    path("ws/own-then-group/", consumers.SendThenGroupConsumer.as_consumer()),
    path("ws/send-then-fail/", consumers.SendThenFailConsumer.as_consumer()),
    path(
        "ws/nested/",
        include([path("connect-fails/", consumers.FailingConnect.as_consumer())]),
    ),
]
