"""
Three ways to serve a case: stock WSGIHandler, stock ASGIHandler, and the
channel path (interface, in-memory layer, worker).

Each returns a Result: the view's observation (None when no view ran) and
the response as the application handed it to its server. Server-added
headers (Date, Server, framing) are not the application's and are left out.
Two things a server does to every response are applied alike to all three:
the body of a HEAD response is dropped, and header values lose surrounding
whitespace (RFC 9110 section 5.5: it is not part of the field value; a WSGI
handler passes Set-Cookie values with a leading space, "name=value" after
parsing).
"""

import asyncio
import io
import warnings
from collections import namedtuple
from urllib.parse import unquote, unquote_to_bytes
from wsgiref.util import FileWrapper

from asgiref.testing import ApplicationCommunicator
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.test import override_settings
from django.urls import clear_script_prefix

from django_fork.channels.interface import InterfaceApplication
from django_fork.channels.layers import get_channel_layer
from django_fork.channels.messages import HTTP_REQUEST_CHANNEL
from django_fork.channels.worker import Worker

from . import views

Result = namedtuple("Result", "observation status headers body")

CLIENT = ("127.0.0.1", 51000)
SERVER_NAME = "testserver"
#: Body bytes per http.request message, as uvicorn's h11 protocol reads them.
ASGI_BODY_MESSAGE_SIZE = 64 * 1024
TIMEOUT = 10

IN_MEMORY_LAYERS = {
    "default": {
        "BACKEND": "django_fork.channels.layers.inmemory.InMemoryChannelLayer",
    },
}

# Django warns when a streaming response's iterator kind does not match the
# handler; that mismatch is what the streaming cases exercise.
_STREAMING_WARNING = r"StreamingHttpResponse must consume"


def _server_port(case):
    return 443 if case.scheme == "https" else 80


def _result(case, status, headers, body):
    headers = sorted((bytes(name), bytes(value).strip()) for name, value in headers)
    if case.method == "HEAD":
        body = b""
    if len(views.observations) > 1:
        raise AssertionError("More than one view ran: %r" % views.observations)
    observation = views.observations[0] if views.observations else None
    return Result(observation, status, headers, body)


# WSGI.


def wsgi_environ(case):
    """
    Return the PEP 3333 environ a WSGI server builds for case, as gunicorn
    does: PATH_INFO is the percent-decoded target path as latin-1 text, below
    SCRIPT_NAME (the mount point); QUERY_STRING is the raw query as latin-1;
    Content-Type and Content-Length become CONTENT_TYPE and CONTENT_LENGTH
    only when sent; other headers become HTTP_* keys, repeated ones joined
    with commas, and header names with underscores are dropped (gunicorn's
    default since 22.0; ASGIRequest does the same).
    """
    environ = {
        "REQUEST_METHOD": case.method,
        "SCRIPT_NAME": case.root_path,
        "PATH_INFO": unquote_to_bytes(case.path).decode("latin-1"),
        "QUERY_STRING": case.query.decode("latin-1"),
        "SERVER_NAME": SERVER_NAME,
        "SERVER_PORT": str(_server_port(case)),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": CLIENT[0],
        "REMOTE_PORT": str(CLIENT[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": case.scheme,
        "wsgi.input": io.BytesIO(case.body),
        "wsgi.input_terminated": True,
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }
    for name, value in case.request_headers():
        name = name.decode("latin-1").upper()
        value = value.decode("latin-1")
        if "_" in name:
            continue
        if name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = value
        elif name == "CONTENT-LENGTH":
            environ["CONTENT_LENGTH"] = value
        else:
            key = "HTTP_" + name.replace("-", "_")
            environ[key] = "%s,%s" % (environ[key], value) if key in environ else value
    return environ


def run_wsgi(case):
    """Serve case with Django's WSGIHandler, as a WSGI server would."""
    views.observations.clear()
    handler = WSGIHandler()
    started = []

    def start_response(status, headers, exc_info=None):
        started.append((status, headers))

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _STREAMING_WARNING)
        iterable = handler(wsgi_environ(case), start_response)
        try:
            body = b"".join(iterable)
        finally:
            iterable.close()
            clear_script_prefix()
    status, headers = started[0]
    headers = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers
    ]
    return _result(case, int(status.split(" ", 1)[0]), headers, body)


# ASGI.


def asgi_scope(case):
    """
    Return the ASGI HTTP scope uvicorn builds for case
    (uvicorn/protocols/http/h11_impl.py): path is the target path
    percent-decoded as UTF-8 with errors replaced, prefixed with root_path;
    raw_path is the target path as received, also prefixed; header names
    are lowercased.
    """
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": (SERVER_NAME, _server_port(case)),
        "client": CLIENT,
        "scheme": case.scheme,
        "method": case.method,
        "root_path": case.root_path,
        "path": case.root_path + unquote(case.path.decode("ascii")),
        "raw_path": case.root_path.encode("ascii") + case.path,
        "query_string": case.query,
        "headers": [(name.lower(), value) for name, value in case.request_headers()],
        "state": {},
    }


async def _asgi_request(application, case):
    communicator = ApplicationCommunicator(application, asgi_scope(case))
    body = case.body
    step = ASGI_BODY_MESSAGE_SIZE
    for position in range(0, max(len(body), 1), step):
        await communicator.send_input(
            {
                "type": "http.request",
                "body": body[position : position + step],
                "more_body": position + step < len(body),
            }
        )
    start = await communicator.receive_output(TIMEOUT)
    if start["type"] != "http.response.start":
        raise AssertionError("Expected http.response.start, got %r." % start)
    content = []
    while True:
        message = await communicator.receive_output(TIMEOUT)
        content.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    await communicator.wait(TIMEOUT)
    return start["status"], start["headers"], b"".join(content)


def run_asgi(case):
    """Serve case with Django's ASGIHandler, as uvicorn would."""
    views.observations.clear()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _STREAMING_WARNING)
        status, headers, body = asyncio.run(_asgi_request(ASGIHandler(), case))
    return _result(case, status, headers, body)


# The channel path.


async def _channel_request(case):
    layer = get_channel_layer()
    worker = Worker(layer, threads=2, routes={})
    if case.chunk_size is not None:
        # The response side: the worker's handler chunks response bodies.
        worker.routes[HTTP_REQUEST_CHANNEL].handler.chunk_size = case.chunk_size
    task = asyncio.ensure_future(worker.run())
    try:
        interface = InterfaceApplication(chunk_size=case.chunk_size)
        return await _asgi_request(interface, case)
    finally:
        worker.stop()
        await asyncio.wait_for(task, TIMEOUT)


def run_channel(case):
    """
    Serve case through the interface and a worker on a fresh in-memory
    layer, both in one event loop, with the same scope as run_asgi().
    """
    views.observations.clear()
    with override_settings(CHANNEL_LAYERS=IN_MEMORY_LAYERS):
        status, headers, body = asyncio.run(_channel_request(case))
    return _result(case, status, headers, body)


TRANSPORTS = {"wsgi": run_wsgi, "asgi": run_asgi, "channel": run_channel}


def run_everywhere(case):
    """Return {transport name: Result or the exception it raised}."""
    results = {}
    for name, run in TRANSPORTS.items():
        try:
            results[name] = run(case)
        except Exception as exc:
            results[name] = exc
    return results
