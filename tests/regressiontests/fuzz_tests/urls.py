from django.urls import path, re_path

from . import views

urlpatterns = [
    path("nul-header/", views.nul_header),
    path("read-body/", views.read_body),
    re_path(r"", views.count),
]

websocket_urlpatterns = [re_path(r"", views.CountingConsumer.as_consumer())]
