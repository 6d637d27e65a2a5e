import hashlib
import time
import zlib

from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse

#: The body of the 100 KB view.
BIG = b"0123456789abcdef" * (100 * 1024 // 16)


def hello(request):
    return HttpResponse(b"Hello, world!", content_type="text/plain")


def big(request):
    return HttpResponse(BIG, content_type="application/octet-stream")


def upload(request):
    """Read the whole request body (1 MB in the benchmark); return its size."""
    return HttpResponse(b"%d" % len(request.body), content_type="text/plain")


def stream_upload(request):
    """Read the body in 1 MB pieces; return its size and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    while True:
        part = request.read(1024 * 1024)
        if not part:
            break
        size += len(part)
        digest.update(part)
    return JsonResponse({"size": size, "sha256": digest.hexdigest()})


def echo(request):
    """
    Answer with a body tied to the request, so that a response delivered to
    the wrong client is detected: the first line is the token, the size and
    CRC-32 of the request body; the rest repeats the token up to ?size=
    bytes in all. ?delay= milliseconds of sleep stand for I/O-bound work.
    """
    token = request.GET.get("token", "")
    if not token.isalnum() or len(token) > 64:
        return HttpResponseBadRequest(b"bad token")
    try:
        size = int(request.GET.get("size", "0"))
        delay = int(request.GET.get("delay", "0"))
    except ValueError:
        return HttpResponseBadRequest(b"bad size or delay")
    body = request.body
    if delay:
        time.sleep(delay / 1000)
    head = b"%s %d %08x\n" % (token.encode(), len(body), zlib.crc32(body))
    fill = token.encode() + b"."
    rest = max(size - len(head), 0)
    content = head + (fill * (rest // len(fill) + 1))[:rest]
    return HttpResponse(content, content_type="application/octet-stream")
