"""
A broadcast check of the chat: open many WebSockets to one room, send one
message, and count the sockets that receive it.

    python -m chat.fanout http://127.0.0.1:8000 --sockets 1000

Each socket belongs to one of a few users who joined the room by its page
(a session each), so the handshakes carry real session cookies. Every wait
has a timeout; the sockets are closed at the end.
"""

import argparse
import asyncio
import http.client
import json
import re
import sys
import time
import urllib.parse

from websockets.asyncio.client import connect


def join(base_url, room, name):
    """Join room by its page as name; return the Cookie header value."""
    parts = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", "/chat/%s/" % room)
        response = connection.getresponse()
        page = response.read().decode()
        cookies = {}
        for header in response.headers.get_all("Set-Cookie") or []:
            key, _, value = header.split(";")[0].partition("=")
            cookies[key] = value
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "name": name})
        connection.request(
            "POST",
            "/chat/%s/" % room,
            body=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": "csrftoken=%s" % cookies["csrftoken"],
                "Referer": base_url + "/chat/%s/" % room,
            },
        )
        response = connection.getresponse()
        response.read()
        if response.status != 302:
            raise RuntimeError("Joining %s answered %d." % (room, response.status))
        for header in response.headers.get_all("Set-Cookie") or []:
            key, _, value = header.split(";")[0].partition("=")
            cookies[key] = value
    finally:
        connection.close()
    return "; ".join("%s=%s" % item for item in cookies.items())


async def fanout(base_url, sockets, room="fanout", users=10, timeout=60, batch=100):
    """
    Open sockets WebSockets to room, send one message on the first, and
    return a dict: how many sockets opened, how many received the message,
    and the seconds each phase took.
    """
    ws_url = "ws" + base_url[len("http") :] + "/ws/chat/%s/" % room
    loop = asyncio.get_running_loop()
    cookies = [
        await loop.run_in_executor(None, join, base_url, room, "user%d" % i)
        for i in range(min(users, sockets))
    ]
    opened = []
    started = time.monotonic()
    try:
        for first in range(0, sockets, batch):
            opened += await asyncio.wait_for(
                asyncio.gather(
                    *(
                        connect(
                            ws_url,
                            origin=base_url,
                            additional_headers={"Cookie": cookies[i % len(cookies)]},
                            open_timeout=timeout,
                            max_queue=16,
                        )
                        for i in range(first, min(first + batch, sockets))
                    )
                ),
                timeout,
            )
        connected = time.monotonic()
        text = "fan-out %f" % connected
        await opened[0].send(text)
        expected = "user0: " + text

        async def receive(websocket):
            async def until_expected():
                while await websocket.recv() != expected:
                    pass

            try:
                await asyncio.wait_for(until_expected(), timeout)
            except Exception:
                # A timeout, or a socket that closed: not received.
                return False
            return True

        received = sum(await asyncio.gather(*(receive(ws) for ws in opened)))
        broadcast = time.monotonic()
    finally:
        await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
    return {
        "sockets": len(opened),
        "received": received,
        "connect_seconds": round(connected - started, 2),
        "broadcast_seconds": round(broadcast - connected, 2),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("base_url", help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--room", default="fanout")
    parser.add_argument("--timeout", type=float, default=60)
    options = parser.parse_args(argv)
    result = asyncio.run(
        fanout(
            options.base_url.rstrip("/"),
            options.sockets,
            room=options.room,
            timeout=options.timeout,
        )
    )
    print(json.dumps(result))
    return 0 if result["received"] == options.sockets else 1


if __name__ == "__main__":
    sys.exit(main())
