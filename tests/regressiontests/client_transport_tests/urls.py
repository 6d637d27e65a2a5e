from django.urls import path

from . import views

urlpatterns = [
    path("whoami/", views.whoami),
    path("flagged/", views.flagged),
    path("page/", views.page),
    path("shapeshifter/", views.shapeshifter),
    path("nested/", views.nested),
]
