"""URL configuration of the demo project."""

from django.urls import include, path

urlpatterns = [
    path("chat/", include("chat.urls")),
    path("", include("shop.urls")),
]
