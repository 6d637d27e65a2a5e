"""
The floor of the channel path's design, as a measuring stick: the same
processes and hops as row 5 (client -> uvicorn -> Redis -> worker -> Redis ->
uvicorn -> client) with nothing else. No message schema, channel names,
capacity, expiry, chunking, backpressure, timeouts, disconnects or error
handling: a request is one RPUSH of a msgpack list, its reply one RPUSH to a
list of its own that the interface waits on with BLPOP. The worker is one
thread running Django's WSGIHandler. Not a server to use.

    uvicorn benchproject.floor:application        (BENCH_REDIS_URL set)
    python -m benchproject.floor                  (the worker)
"""

import io
import itertools
import os

import msgpack

REQUESTS = "bench-floor:requests"


class FloorInterface:
    def __init__(self):
        self.redis = None
        self.replies = ("bench-floor:reply:%d:%%d" % os.getpid(), itertools.count())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        if self.redis is None:
            import redis.asyncio

            # No socket timeout: redis-py 8's default (5 s) would end a
            # BLPOP that waits longer.
            self.redis = redis.asyncio.Redis.from_url(
                os.environ["BENCH_REDIS_URL"], socket_timeout=None
            )
        body = bytearray()
        more_body = True
        while more_body:
            message = await receive()
            body += message.get("body", b"")
            more_body = message.get("more_body", False)
        template, counter = self.replies
        reply = template % next(counter)
        request = [
            reply,
            scope["method"],
            scope["path"],
            scope["query_string"],
            [list(pair) for pair in scope["headers"]],
            bytes(body),
        ]
        await self.redis.rpush(REQUESTS, msgpack.packb(request))
        _, packed = await self.redis.blpop([reply], 60)
        status, headers, content = msgpack.unpackb(packed)
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": content})


application = FloorInterface()


def environ(method, path, query_string, headers, body):
    """A WSGI environ, as a WSGI server would build it."""
    env = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path.encode().decode("latin1"),
        "QUERY_STRING": query_string.decode("latin1"),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in headers:
        name = name.decode("latin1").upper().replace("-", "_")
        value = value.decode("latin1")
        if name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            env[name] = value
        else:
            env["HTTP_" + name] = value
    return env


def work():
    import django
    import redis
    from django.core.handlers.wsgi import WSGIHandler

    django.setup()
    handler = WSGIHandler()
    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"], socket_timeout=None)
    while True:
        _, packed = client.blpop([REQUESTS], 0)
        reply, method, path, query_string, headers, body = msgpack.unpackb(packed)
        started = []

        def start_response(status, response_headers, exc_info=None):
            started[:] = [int(status.split(" ", 1)[0]), response_headers]

        result = handler(
            environ(method, path, query_string, headers, body), start_response
        )
        try:
            content = b"".join(result)
        finally:
            result.close()
        status, response_headers = started
        response_headers = [
            [name.encode("latin1"), value.encode("latin1")]
            for name, value in response_headers
        ]
        client.rpush(reply, msgpack.packb([status, response_headers, content]))


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")
    work()
