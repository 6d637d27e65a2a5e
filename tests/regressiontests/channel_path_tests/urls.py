from django.urls import path

from . import views

urlpatterns = [
    path("hello/", views.hello),
    path("describe/", views.describe),
    path("upload/", views.upload),
    path("body-length/", views.body_length),
    path("stream/", views.stream),
    path("astream/", views.astream),
    path("async/", views.async_view),
    path("file/", views.file_download),
    path("cookies/", views.cookies),
    path("slow/", views.slow),
    path("boom/", views.boom),
    path("endless/", views.endless),
    path("late-stream/", views.late_stream),
    path("stream-boom/", views.stream_boom),
    path("sized/", views.sized),
]
