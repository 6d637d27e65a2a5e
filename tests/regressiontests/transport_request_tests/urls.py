from django.http import FileResponse, HttpResponse
from django.urls import path


def hello(request):
    return HttpResponse("hello")


def download(request):
    return FileResponse(open(__file__, "rb"))


urlpatterns = [path("", hello), path("download/", download)]
