"""URL configuration of the demo project."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # The live load page of the channel layer, for staff.
    path("admin/channels/", include("django_fork.channels.loadpage")),
    path("admin/", admin.site.urls),
    path("chat/", include("chat.urls")),
    path("", include("shop.urls")),
]
