from django.conf import settings
from django.urls import path

from . import views

urlpatterns = [
    path("hello/", views.hello),
    path("big/", views.big),
    path("upload/", views.upload),
    path("stream-upload/", views.stream_upload),
    path("echo/", views.echo),
]

if settings.IMPOLITE:
    from .impolite import urlpatterns as impolite_urlpatterns

    urlpatterns += impolite_urlpatterns
