"""Views and a consumer that count calls: fuzzed input never gets here."""

import threading

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from django_fork.channels.consumer import AsyncWebsocketConsumer

calls = []
_lock = threading.Lock()


def record(what):
    with _lock:
        calls.append(what)


def count(request):
    record(request.path)
    return HttpResponse(b"counted")


def nul_header(request):
    """A header value Django lets through but no HTTP/1.1 server may send."""
    response = HttpResponse(b"nul")
    response["X-Nul"] = "a\x00b"
    return response


@csrf_exempt
def read_body(request):
    return HttpResponse(b"%d" % len(request.body))


class CountingConsumer(AsyncWebsocketConsumer):
    async def handle(self):
        record(self.message["type"])
