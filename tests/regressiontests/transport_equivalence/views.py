"""
Views that record what they observe of the request.

Every view appends one observation, a JSON-able dict, to ``observations``
before it answers; the transports in transports.py clear the list before a
request and read it afterwards. Observations stay out of the response bodies
so that a difference in what the view saw is reported once, as such, and not
again as a different body and Content-Length.
"""

import hashlib
import json
import tempfile

from django.http import (
    FileResponse,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    RawPostDataException,
    StreamingHttpResponse,
)
from django.shortcuts import redirect
from django.urls import get_script_prefix, reverse
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from .cases import pattern

observations = []

#: The META keys that WSGI servers and ASGIRequest both define (plus
#: SERVER_PROTOCOL and REMOTE_PORT, which not every transport defines);
#: every HTTP_* key is recorded as well.
META_KEYS = (
    "REQUEST_METHOD",
    "QUERY_STRING",
    "SCRIPT_NAME",
    "PATH_INFO",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "REMOTE_PORT",
)


def _sha256(chunks):
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def _error(exc):
    return {"error": type(exc).__name__}


def _body(request):
    try:
        body = request.body
    except RawPostDataException:
        # The multipart parser consumed the stream; that is the same on every
        # transport, and recorded as such.
        return "unreadable"
    return {"length": len(body), "sha256": _sha256([body])}


def _post(request):
    return list(request.POST.lists())


def _files(request):
    return [
        [
            name,
            [
                {
                    "name": upload.name,
                    "size": upload.size,
                    "content_type": upload.content_type,
                    # Django gives the charset of a multipart part as bytes:
                    # keep the type visible.
                    "charset": repr(upload.charset),
                    "sha256": _sha256(upload.chunks()),
                    "class": type(upload).__name__,
                }
                for upload in uploads
            ],
        ]
        for name, uploads in request.FILES.lists()
    ]


def record(request, body_first=False):
    """
    Append what the view sees of request to observations.

    Read the body before POST and FILES when body_first is true (then the
    multipart parser works on the body in memory), after them otherwise.
    Return the first error raised while reading the request data, for the
    view to re-raise once the observation is recorded: Django turns it into
    the response (RequestDataTooBig and TooManyFieldsSent into 400).
    """
    meta = {key: request.META[key] for key in META_KEYS if key in request.META}
    meta.update(
        (key, value) for key, value in request.META.items() if key.startswith("HTTP_")
    )
    observation = {
        "view": request.resolver_match.url_name,
        "kwargs": request.resolver_match.kwargs,
        "method": request.method,
        "path": request.path,
        "path_info": request.path_info,
        "full_path": request.get_full_path(),
        "script_prefix": get_script_prefix(),
        "scheme": request.scheme,
        "is_secure": request.is_secure(),
        "host": request.get_host(),
        "port": request.get_port(),
        "absolute_uri": request.build_absolute_uri(),
        "encoding": request.encoding,
        "content_type": request.content_type,
        "content_params": request.content_params,
        "GET": list(request.GET.lists()),
        "COOKIES": request.COOKIES,
        "headers": dict(request.headers),
        "META": dict(sorted(meta.items())),
    }
    error = None
    readers = [("POST", _post), ("FILES", _files)]
    readers.insert(0 if body_first else 2, ("body", _body))
    for key, read in readers:
        try:
            observation[key] = read(request)
        except Exception as exc:
            observation[key] = _error(exc)
            error = error or exc
    # A round trip through JSON proves the observation JSON-able and turns
    # tuples into lists, whichever transport produced it.
    observations.append(json.loads(json.dumps(observation)))
    return error


def _answer(request, body_first=False):
    error = record(request, body_first)
    if error is not None:
        raise error
    return JsonResponse({"view": request.resolver_match.url_name})


@csrf_exempt
def observe(request, rest=""):
    return _answer(request)


@csrf_exempt
def raw(request):
    return _answer(request, body_first=True)


@csrf_exempt
async def async_observe(request):
    return _answer(request)


def protected(request):
    """Not exempt from CSRF: a POST without a token never gets here."""
    return _answer(request)


@csrf_exempt
def json_echo(request):
    error = record(request, body_first=True)
    if error is not None:
        raise error
    return JsonResponse({"received": json.loads(request.body)})


class ObserveView(View):
    """A class-based view: it answers OPTIONS and 405 by itself."""

    def dispatch(self, request, *args, **kwargs):
        record(request)
        return super().dispatch(request, *args, **kwargs)

    def get(self, request):
        return JsonResponse({"view": "cbv"})

    def post(self, request):
        return JsonResponse({"view": "cbv"})


cbv = csrf_exempt(ObserveView.as_view())


def _parts(request):
    size = int(request.GET.get("part", 1000))
    count = int(request.GET.get("count", 5))
    for index in range(count):
        yield pattern(size, index)
        # Empty parts are legal and must not end the stream early.
        yield b""


def stream(request):
    record(request)
    response = StreamingHttpResponse(_parts(request), content_type="text/plain")
    response["X-Stream"] = "sync"
    return response


def astream(request):
    record(request)

    async def parts():
        for part in _parts(request):
            yield part

    response = StreamingHttpResponse(parts(), content_type="text/plain")
    response["X-Stream"] = "async"
    return response


def file_download(request):
    record(request)
    # FileResponse closes the file when the response is closed, and a named
    # temporary file is removed when closed.
    temporary = tempfile.NamedTemporaryFile(suffix=".bin")
    temporary.write(pattern(int(request.GET["size"]), 9))
    temporary.seek(0)
    return FileResponse(
        temporary,
        as_attachment="attachment" in request.GET,
        filename="r\u00e9sum\u00e9 report.txt",
    )


def cookies(request):
    record(request)
    response = HttpResponse("cookies")
    response.set_cookie("plain", "1")
    response.set_cookie(
        "flags", "two words", path="/observe/", httponly=True, samesite="Lax"
    )
    response.set_cookie("safe", "caf\u00e9", secure=True, domain="testserver")
    response.delete_cookie("gone")
    return response


def redirect_view(request):
    record(request)
    if "absolute" in request.GET:
        url = request.build_absolute_uri(reverse("observe", args=["next"]))
        return HttpResponseRedirect(url + "?from=redirect")
    return redirect("observe", rest="next")


def error(request):
    record(request)
    raise ValueError("A view that fails.")


def big(request):
    record(request)
    return HttpResponse(pattern(int(request.GET.get("size", 300 * 1024)), 11))


def unicode_response(request):
    record(request)
    response = HttpResponse(
        "Gr\u00fc\u00dfe, \u4e16\u754c \u2603\n", content_type="text/plain"
    )
    response["X-Latin"] = "caf\u00e9"
    # Not latin-1: Django MIME-encodes it.
    response["X-Snowman"] = "\u2603"
    return response
