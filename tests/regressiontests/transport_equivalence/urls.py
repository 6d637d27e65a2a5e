from django.urls import path, re_path

from . import views

urlpatterns = [
    path("", views.observe, name="index"),
    # Leading slashes are optional so that //observe// reaches the view.
    re_path(r"^/*observe/(?P<rest>.*)\Z", views.observe, name="observe"),
    path("raw/", views.raw, name="raw"),
    path("json/", views.json_echo, name="json"),
    path("async/", views.async_observe, name="async"),
    path("protected/", views.protected, name="protected"),
    path("cbv/", views.cbv, name="cbv"),
    path("stream/", views.stream, name="stream"),
    path("astream/", views.astream, name="astream"),
    path("file/", views.file_download, name="file"),
    path("cookies/", views.cookies, name="cookies"),
    path("redirect/", views.redirect_view, name="redirect"),
    path("error/", views.error, name="error"),
    path("big/", views.big, name="big"),
    path("unicode/", views.unicode_response, name="unicode"),
]
