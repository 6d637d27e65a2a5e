"""
Serve one request through the stock project's wsgi.py with wsgiref, or with
"asgi" as the argument through its asgi.py with uvicorn, then print what
served it as JSON. Run in a fresh interpreter by the tests.
"""

import json
import socket
import sys
import threading
import time
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def get(port):
    url = "http://127.0.0.1:%d/" % port
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode(), response.headers.get_all("Set-Cookie")


def serve_wsgi():
    from stockproject.wsgi import application

    server = make_server("127.0.0.1", 0, application, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        return application, get(server.server_port)
    finally:
        server.shutdown()


def serve_asgi():
    import uvicorn
    from stockproject.asgi import application

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(application, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        return application, get(sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(30)


def main():
    if sys.argv[1:] == ["asgi"]:
        application, (body, cookies) = serve_asgi()
    else:
        application, (body, cookies) = serve_wsgi()
    handler_cls = type(application)
    print(
        json.dumps(
            {
                "body": body,
                "cookies": len(cookies or []),
                "handler": "%s.%s" % (handler_cls.__module__, handler_cls.__qualname__),
                "request_class": "%s.%s"
                % (
                    application.request_class.__module__,
                    application.request_class.__qualname__,
                ),
                "django_fork_modules": sorted(
                    name for name in sys.modules if name.startswith("django_fork")
                ),
                "channel_modules": sorted(
                    name
                    for name in sys.modules
                    if name.startswith("django_fork.channels")
                    or name.startswith("django_fork.core")
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
