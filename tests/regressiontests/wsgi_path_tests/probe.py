"""
Serve one request through the stock project's wsgi.py with wsgiref, then
print what served it as JSON. Run in a fresh interpreter by the tests.
"""

import json
import sys
import threading
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def main():
    from stockproject.wsgi import application

    server = make_server("127.0.0.1", 0, application, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = "http://127.0.0.1:%d/" % server.server_port
    with urllib.request.urlopen(url) as response:
        body = response.read().decode()
        cookies = response.headers.get_all("Set-Cookie")
    server.shutdown()
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
