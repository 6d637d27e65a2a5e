"""URL configuration of the demo project."""

from django.urls import include, path

urlpatterns = [
    path("", include("shop.urls")),
]
