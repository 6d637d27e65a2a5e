from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/echo/", consumers.EchoConsumer.as_consumer()),
    path("ws/refuse/", consumers.RefusingConsumer.as_consumer()),
    path("ws/order/", consumers.OrderConsumer.as_consumer()),
    path("ws/room/", consumers.RoomConsumer.as_consumer()),
    path("ws/json/<slug:room>/", consumers.AsyncJsonConsumer.as_consumer()),
    path("ws/sum/", consumers.SyncJsonConsumer.as_consumer()),
    path("ws/fail/", consumers.FailingConsumer.as_consumer()),
    path("ws/count/", consumers.CountingConsumer.as_consumer()),
    path("ws/whoami/", consumers.WhoAmIConsumer.as_consumer()),
    path("ws/sequence/", consumers.SequenceConsumer.as_consumer()),
    path("ws/async-count/", consumers.AsyncCountingConsumer.as_consumer()),
    path("ws/rename/", consumers.RenamingConsumer.as_consumer()),
    path("ws/refuse-session/", consumers.RefusingSessionConsumer.as_consumer()),
    path("ws/http-only/", consumers.HttpOnlyConsumer.as_consumer()),
    path("ws/two/", consumers.TwoFramesConsumer.as_consumer()),
    path("ws/async-two/", consumers.AsyncTwoFramesConsumer.as_consumer()),
    path("ws/own-then-group/", consumers.SendThenGroupConsumer.as_consumer()),
    path("ws/send-then-fail/", consumers.SendThenFailConsumer.as_consumer()),
    path("ws/kwargs/<slug:room>/", consumers.KwargsConsumer.as_consumer()),
]
