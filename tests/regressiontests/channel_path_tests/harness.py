"""Drive the interface and a worker in one event loop, with no sockets."""

import asyncio
import contextlib

from asgiref.testing import ApplicationCommunicator

from django_fork.channels.worker import Worker


def http_scope(method="GET", path="/", query_string=b"", headers=(), root_path=""):
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query_string,
        "root_path": root_path,
        "headers": [(b"host", b"testserver"), *headers],
        "client": ["127.0.0.1", 40000],
        "server": ["testserver", 80],
    }


async def send_body(communicator, body, step=64 * 1024):
    parts = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
    for i, part in enumerate(parts):
        await communicator.send_input(
            {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        )


async def read_response(communicator, timeout=5):
    """Return (status, headers, body) from the ASGI messages the app sent."""
    start = await communicator.receive_output(timeout)
    assert start["type"] == "http.response.start", start
    body = b""
    while True:
        message = await communicator.receive_output(timeout)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return start["status"], start["headers"], body


async def request(app, method="GET", path="/", body=b"", timeout=5, **scope):
    communicator = ApplicationCommunicator(app, http_scope(method, path, **scope))
    await send_body(communicator, body)
    try:
        return await read_response(communicator, timeout)
    finally:
        await communicator.wait(timeout)


@contextlib.asynccontextmanager
async def running_worker(layer, **options):
    options.setdefault("routes", {})
    options.setdefault("threads", 2)
    worker = Worker(layer, **options)
    task = asyncio.ensure_future(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)
