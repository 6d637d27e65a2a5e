from django.urls import path

from . import views

urlpatterns = [
    path("describe/", views.describe),
    path("greeting/", views.greeting, name="greeting"),
    path("set-cookie/", views.set_cookie),
    path("redirect/", views.redirect),
    path("boom/", views.boom),
    path("upload/", views.upload),
    path("form/", views.form),
    path("stream/", views.stream),
    path("async/", views.async_view),
    path("notes/", views.notes),
    path("private/", views.private),
    path("enqueue/", views.enqueue),
    path("json/", views.json_view),
    path("big/", views.big),
    path("astream/", views.astream),
]
