"""
The development server of the channel path, which runserver runs when the
project uses channels: basehttp.run()'s counterpart.

One process holds everything: uvicorn hosts the interface application and
worker threads take its messages off the default channel layer (in-memory
unless CHANNEL_LAYERS says otherwise), so WebSockets and channel consumers
work as in production. Each request is logged on the django.server logger in
the format of Django's development server.
"""

import asyncio
import logging
import socket
import time

import uvicorn

from django_fork.channels.layers import DEFAULT_CHANNEL_LAYER_ALIAS, channel_layers
from django_fork.channels.worker import Worker

logger = logging.getLogger("django.server")


class RequestLogger:
    """
    Log each HTTP request and WebSocket handshake of an ASGI application as
    WSGIRequestHandler does: '"GET /path HTTP/1.1" 200 1234', at INFO, and
    at WARNING or ERROR for 4xx and 5xx statuses.
    """

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.application(scope, receive, send)
        state = {"status": None, "size": 0, "logged": False}

        async def logging_send(message):
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                state["status"] = message["status"]
            elif kind in ("http.response.body", "websocket.http.response.body"):
                state["size"] += len(message.get("body", b""))
            elif kind == "websocket.accept":
                self.log(scope, 101, "-", state)
            elif kind == "websocket.close" and state["status"] is None:
                # A handshake refused before accept: the server answers 403.
                state["status"] = 403
            await send(message)

        try:
            await self.application(scope, receive, logging_send)
        finally:
            if state["status"] is not None:
                self.log(scope, state["status"], state["size"], state)

    def log(self, scope, status, size, state):
        if state["logged"]:
            return
        state["logged"] = True
        path = scope.get("raw_path") or scope["path"].encode()
        if isinstance(path, bytes):
            path = path.decode("latin-1")
        if scope.get("query_string"):
            path += "?" + scope["query_string"].decode("latin-1")
        request_line = "%s %s HTTP/%s" % (
            scope.get("method", "GET"),
            path,
            scope.get("http_version", "1.1"),
        )
        if status >= 500:
            level = logger.error
        elif status >= 400:
            level = logger.warning
        else:
            level = logger.info
        level(
            '"%s" %s %s',
            request_line,
            status,
            size,
            extra={
                "status_code": status,
                "server_time": time.strftime("%d/%b/%Y %H:%M:%S"),
            },
        )


def run(
    addr,
    port,
    application,
    ipv6=False,
    threads=4,
    on_bind=None,
    layer_alias=DEFAULT_CHANNEL_LAYER_ALIAS,
):
    """
    Serve application (the interface application, possibly wrapped) on
    addr:port with worker threads in this process, until interrupted.

    Raise OSError when the address cannot be bound, as basehttp.run() does.
    """
    listener = socket.create_server(
        (addr, port), family=socket.AF_INET6 if ipv6 else socket.AF_INET
    )
    # As in runstack: accepted sockets take their listener's proto, and
    # asyncio sets TCP_NODELAY only when it is IPPROTO_TCP.
    listener = socket.socket(
        listener.family, listener.type, socket.IPPROTO_TCP, listener.detach()
    )
    if on_bind is not None:
        on_bind(listener.getsockname()[1])
    layer = channel_layers[layer_alias]
    worker = Worker(layer, threads=threads)
    config = uvicorn.Config(
        RequestLogger(application),
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
        # The Ctrl-C of runserver stops at once, as Django's server does.
        timeout_graceful_shutdown=1,
    )
    asyncio.run(_serve(uvicorn.Server(config), listener, worker, layer))


async def _serve(server, listener, worker, layer):
    try:
        await worker.run_while(server.serve(sockets=[listener]))
    finally:
        await layer.close()
