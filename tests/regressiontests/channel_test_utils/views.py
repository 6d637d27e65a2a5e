import asyncio
import threading

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import (
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from django_fork.channels.background import send_task

from .models import Note


def describe(request):
    """Report what the view saw: the request and where it ran."""
    try:
        asyncio.get_running_loop()
        in_loop = True
    except RuntimeError:
        in_loop = False
    return JsonResponse(
        {
            "request_class": type(request).__name__,
            "method": request.method,
            "path": request.path,
            "path_info": request.path_info,
            "script_name": request.META["SCRIPT_NAME"],
            "query": request.GET.dict(),
            "scheme": request.scheme,
            "host": request.get_host(),
            "remote_addr": request.META.get("REMOTE_ADDR"),
            "x_custom": request.headers.get("X-Custom"),
            "cookies": request.COOKIES,
            "body": request.body.decode("latin1"),
            "thread": threading.current_thread().name,
            "main_thread": threading.current_thread() is threading.main_thread(),
            "in_event_loop": in_loop,
            "user": request.user.get_username() if hasattr(request, "user") else None,
        }
    )


def greeting(request):
    return render(
        request, "channel_test_utils/greeting.html", {"name": request.GET["name"]}
    )


def set_cookie(request):
    response = HttpResponse("cookie set")
    response.set_cookie("flavour", "ginger", max_age=3600, httponly=True)
    response.set_cookie("colour", "blue")
    return response


def redirect(request):
    return HttpResponseRedirect("/describe/?redirected=1")


def boom(request):
    raise KeyError("boom")


@csrf_exempt
def upload(request):
    return JsonResponse(
        {
            "post": request.POST.dict(),
            "files": {name: f.read().decode() for name, f in request.FILES.items()},
        }
    )


def form(request):
    """Accept POST only with a CSRF token (the middleware checks)."""
    return HttpResponse("posted" if request.method == "POST" else "form")


def stream(request):
    def parts():
        for i in range(3):
            yield b"part %d;" % i

    return StreamingHttpResponse(parts(), content_type="text/plain")


async def async_view(request):
    await asyncio.sleep(0)
    return HttpResponse("async %s" % request.GET.get("n", ""))


def notes(request):
    """Create a note on POST; list notes (the test's rows) on GET."""
    if request.method == "POST":
        Note.objects.create(text=request.POST["text"])
    return JsonResponse(
        {
            "notes": list(Note.objects.values_list("text", flat=True)),
            "in_atomic_block": connection.in_atomic_block,
        }
    )


@login_required
def private(request):
    return HttpResponse("private for %s" % request.user.get_username())


def enqueue(request):
    """Queue a task message for the "thumbnails" consumer."""
    send_task("thumbnails", {"type": "thumbnail", "name": request.GET["name"]})
    return HttpResponse("queued")


def json_view(request):
    return JsonResponse({"answer": 42})


def big(request):
    return HttpResponse(b"x" * int(request.GET["size"]))


async def astream(request):
    async def parts():
        for i in range(2):
            await asyncio.sleep(0)
            yield b"async %d;" % i

    return StreamingHttpResponse(parts(), content_type="text/plain")
