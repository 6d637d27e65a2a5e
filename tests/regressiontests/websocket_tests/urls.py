from django.http import HttpResponse
from django.urls import path


def remember(request):
    request.session["name"] = request.GET["name"]
    return HttpResponse("remembered")


urlpatterns = [path("remember/", remember)]
