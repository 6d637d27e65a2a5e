"""
The demo's views: plain Django, unaware of the transport that serves them.

Under ``manage.py runstack`` each request arrives as an http.request message
and runs in a worker thread; under ``runserver`` or a WSGI server the same
views run on the WSGI path. The home page and the JSON endpoint show which.
"""

import asyncio
import hashlib
import os
import random
import threading
import time

from django.conf import settings
from django.http import FileResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_safe

from .forms import PRODUCTS, OrderForm, UploadForm

_download_lock = threading.Lock()


def transport(request):
    """Return the name of the request class: ChannelRequest, WSGIRequest..."""
    return type(request).__name__


@require_safe
def home(request):
    return render(
        request,
        "shop/home.html",
        {
            "transport": transport(request),
            "download_size": settings.DEMO_DOWNLOAD_SIZE,
        },
    )


@require_http_methods(["GET", "POST"])
def order(request):
    if request.method == "POST":
        form = OrderForm(request.POST)
        if form.is_valid():
            return render(
                request,
                "shop/order_done.html",
                {
                    "order": form.cleaned_data,
                    "product_name": PRODUCTS[form.cleaned_data["product"]][0],
                    "total": form.total(),
                },
            )
    else:
        form = OrderForm()
    return render(request, "shop/order.html", {"form": form})


def describe_upload(uploaded):
    """Return the name, size, content type and SHA-256 of an uploaded file."""
    digest = hashlib.sha256()
    for chunk in uploaded.chunks():
        digest.update(chunk)
    return {
        "name": uploaded.name,
        "size": uploaded.size,
        "content_type": uploaded.content_type,
        "sha256": digest.hexdigest(),
        # TemporaryUploadedFile above FILE_UPLOAD_MAX_MEMORY_SIZE.
        "storage": type(uploaded).__name__,
    }


@require_http_methods(["GET", "POST"])
def upload(request):
    results = None
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            results = [describe_upload(f) for f in form.cleaned_data["files"]]
            form = UploadForm()
    else:
        form = UploadForm()
    return render(request, "shop/upload.html", {"form": form, "results": results})


def stream_lines(count, delay):
    for number in range(1, count + 1):
        if number > 1:
            time.sleep(delay)
        yield "line %d of %d at %s\n" % (
            number,
            count,
            timezone.now().strftime("%H:%M:%S.%f")[:-3],
        )


@require_safe
def stream(request):
    """Stream lines, one every DEMO_STREAM_DELAY seconds (?lines=N)."""
    count = _lines(request)
    return StreamingHttpResponse(
        stream_lines(count, settings.DEMO_STREAM_DELAY),
        content_type="text/plain; charset=utf-8",
        headers={"X-Accel-Buffering": "no"},
    )


async def stream_lines_async(count, delay):
    for number in range(1, count + 1):
        if number > 1:
            await asyncio.sleep(delay)
        yield "async line %d of %d at %s\n" % (
            number,
            count,
            timezone.now().strftime("%H:%M:%S.%f")[:-3],
        )


@require_safe
def stream_async(request):
    """
    Stream lines from an async iterator. The channel worker iterates it on
    its event loop rather than in a thread.
    """
    count = _lines(request)
    return StreamingHttpResponse(
        stream_lines_async(count, settings.DEMO_STREAM_DELAY),
        content_type="text/plain; charset=utf-8",
        headers={"X-Accel-Buffering": "no"},
    )


def _lines(request):
    try:
        count = int(request.GET.get("lines", settings.DEMO_STREAM_LINES))
    except ValueError:
        count = settings.DEMO_STREAM_LINES
    return max(1, min(count, 1000))


def download_content(size, seed=0):
    """Yield size deterministic pseudo-random bytes, 1 MiB at a time."""
    rng = random.Random(seed)
    remaining = size
    while remaining:
        block = min(remaining, 1024 * 1024)
        yield rng.randbytes(block)
        remaining -= block


def download_path():
    """Return the generated download's path, writing the file if needed."""
    size = settings.DEMO_DOWNLOAD_SIZE
    directory = settings.DEMO_DOWNLOAD_DIR
    path = os.path.join(directory, "download-%d.bin" % size)
    with _download_lock:
        if not os.path.exists(path):
            os.makedirs(directory, exist_ok=True)
            partial = "%s.%d.tmp" % (path, os.getpid())
            with open(partial, "wb") as f:
                for block in download_content(size):
                    f.write(block)
            os.replace(partial, path)
    return path


@require_safe
def download(request):
    """Send a large generated file (DEMO_DOWNLOAD_SIZE bytes) as a download."""
    return FileResponse(
        open(download_path(), "rb"),
        as_attachment=True,
        filename="demo-download.bin",
    )


@require_safe
def info(request):
    """Return what the view sees of the request, as JSON."""
    return JsonResponse(
        {
            "transport": transport(request),
            "method": request.method,
            "path": request.path,
            "query": {key: request.GET.getlist(key) for key in request.GET},
            "scheme": request.scheme,
            "host": request.get_host(),
            "remote_addr": request.META.get("REMOTE_ADDR"),
            "thread": threading.current_thread().name,
            "pid": os.getpid(),
            "time": timezone.now().isoformat(),
        }
    )
