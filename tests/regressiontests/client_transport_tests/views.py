from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.test import Client

from .restish import DataResponse, api_view


@api_view
def whoami(request):
    user = getattr(request, "user", None)
    return DataResponse(
        {
            "user": user.get_username() if user is not None else None,
            "request_class": type(request).__name__,
            "request_id": id(request),
            "method": request.method,
            "body": request.body.decode(),
        }
    )


def flagged(request):
    response = HttpResponse("flagged")
    response.flag = "set by the view"
    return response


def page(request):
    return TemplateResponse(
        request, "client_transport_tests/page.html", {"title": "A page"}
    )


class ShapeShifter(HttpResponse):
    """Its content changes once the server closes it, after sending it."""

    def close(self):
        super().close()
        self.content = b"not what was sent"


def shapeshifter(request):
    return ShapeShifter(b"what was sent")


def nested(request):
    inner = Client().get("/whoami/")
    return HttpResponse(
        "%s inside %s" % (inner.data["request_class"], type(request).__name__)
    )
