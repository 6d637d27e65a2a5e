import asyncio
import threading

from django.http import (
    FileResponse,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.views.decorators.csrf import csrf_exempt

events = []


def hello(request):
    return HttpResponse("Hello, %s!" % request.GET.get("name", "world"))


def describe(request):
    """Report how the view was called: thread, event loop, request class."""
    try:
        asyncio.get_running_loop()
        in_loop = True
    except RuntimeError:
        in_loop = False
    return JsonResponse(
        {
            "thread": threading.current_thread().name,
            "in_event_loop": in_loop,
            "request_class": type(request).__name__,
            "path": request.path,
            "path_info": request.path_info,
            "script_name": request.META["SCRIPT_NAME"],
        }
    )


def on_disk(stream):
    """Return whether a request's body stream is a file on disk."""
    try:
        stream.fileno()
    except (AttributeError, OSError):
        return False
    return True


@csrf_exempt
def upload(request):
    return JsonResponse(
        {
            "body_class": type(request._stream).__name__,
            "on_disk": on_disk(request._stream),
            "files": {
                name: [f.size for f in request.FILES.getlist(name)]
                for name in request.FILES
            },
            "post": dict(request.POST),
        }
    )


@csrf_exempt
def body_length(request):
    return JsonResponse({"length": len(request.body)})


def stream(request):
    def parts():
        for i in range(int(request.GET.get("parts", 3))):
            yield b"%d:" % i + b"x" * int(request.GET.get("size", 10))

    return StreamingHttpResponse(parts())


async def astream(request):
    async def parts():
        for i in range(3):
            await asyncio.sleep(0)
            yield b"async-%d;" % i

    return StreamingHttpResponse(parts())


async def async_view(request):
    return HttpResponse("async ok")


def file_download(request):
    return FileResponse(open(__file__, "rb"), as_attachment=True)


def cookies(request):
    response = HttpResponse("cookies")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2", httponly=True)
    return response


def slow(request):
    threading.Event().wait(float(request.GET.get("seconds", 0.5)))
    events.append("slow finished")
    return HttpResponse("slow done")


def boom(request):
    raise ValueError("boom")


def endless(request):
    """Stream forever; record when the response is closed."""

    def parts():
        try:
            n = 0
            while True:
                n += 1
                yield b"line %d\n" % n
                threading.Event().wait(0.005)
        finally:
            events.append("endless closed")

    return StreamingHttpResponse(parts())


def late_stream(request):
    """Think before the first part, then stream slowly; record the close."""

    def parts():
        try:
            threading.Event().wait(float(request.GET.get("think", 0.2)))
            for n in range(1000):
                yield b"part %d\n" % n
                threading.Event().wait(0.01)
        finally:
            events.append("late stream closed")

    return StreamingHttpResponse(parts())


def stream_boom(request):
    """Stream ?after= parts, then raise."""

    def parts():
        for n in range(int(request.GET.get("after", 0))):
            yield b"part %d\n" % n
        raise ValueError("boom mid-stream")

    return StreamingHttpResponse(parts())


def sized(request):
    """A body of ?size= bytes, a pattern that a truncation would break."""
    size = int(request.GET["size"])
    return HttpResponse((b"0123456789abcdef" * (size // 16 + 1))[:size])
