from django.urls import path

from . import views

app_name = "shop"

urlpatterns = [
    path("", views.home, name="home"),
    path("order/", views.order, name="order"),
    path("upload/", views.upload, name="upload"),
    path("stream/", views.stream, name="stream"),
    path("stream/async/", views.stream_async, name="stream-async"),
    path("download/", views.download, name="download"),
    path("api/info/", views.info, name="info"),
]
