from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/channels/", include("django_fork.channels.loadpage")),
    path("admin/", admin.site.urls),
]
