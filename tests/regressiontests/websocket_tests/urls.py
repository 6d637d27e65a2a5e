from django.http import HttpResponse
from django.urls import path


def remember(request):
    request.session["name"] = request.GET["name"]
    return HttpResponse("remembered")


def recall(request):
    return HttpResponse(
        "%s/%s" % (request.session.get("name"), request.session.get("connected"))
    )


urlpatterns = [path("remember/", remember), path("recall/", recall)]
