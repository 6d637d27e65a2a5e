from django.http import HttpResponse
from django.urls import path


def index(request):
    request.session["visits"] = request.session.get("visits", 0) + 1
    return HttpResponse(
        "%s %s visits=%d" % (request.method, request.path, request.session["visits"])
    )


urlpatterns = [path("", index)]
