"""
Views and a WebSocket consumer for the impolite-client drills
(benchmarks/impolite.py), with a view that reports what is left behind.
"""

import os
import threading

from django.core.cache import cache
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path

from django_fork.channels.consumer import WebsocketConsumer
from django_fork.channels.layers import get_channel_layer
from django_fork.contrib.sessions.channel import channel_session

GROUP = "drill"
#: The pattern downloads repeat: a truncated or shifted body fails its hash.
PATTERN = bytes(range(256)) * 64


def download_body(size):
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


def download(request):
    """A body of ?size= bytes (default 2 MiB), in one HttpResponse."""
    size = int(request.GET.get("size", 2 * 1024 * 1024))
    return HttpResponse(download_body(size), content_type="application/octet-stream")


def slow_stream(request):
    """Stream a small part every ?every= ms for up to 30 s."""
    every = int(request.GET.get("every", 20)) / 1000

    def parts():
        for n in range(int(30 / every)):
            yield b"part %d\n" % n
            threading.Event().wait(every)

    return StreamingHttpResponse(parts())


def raise_stream(request):
    """Stream ?after= parts, then raise."""

    def parts():
        for n in range(int(request.GET.get("after", 2))):
            yield b"part %d\n" % n
        raise RuntimeError("The drill's streaming view failed on purpose.")

    return StreamingHttpResponse(parts())


def drill_state(request):
    """
    Report what the drills may leave behind: members of the drill's group,
    channel sessions, and (over Redis) keys without an expiry.
    """
    layer = get_channel_layer()
    redis_url = os.environ.get("BENCH_REDIS_URL")
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url)
        members = client.hlen("%s:g:%s" % (layer.prefix, GROUP))
        sessions = 0
        no_expiry = []
        for key in client.scan_iter(count=1000):
            if b"sessions.cache" in key:
                sessions += 1
            if client.ttl(key) == -1:
                no_expiry.append(key.decode("latin1"))
        client.close()
    else:
        members = len(layer._groups.get(GROUP, {}))
        sessions = sum(1 for key in cache._cache if "sessions.cache" in key)
        no_expiry = []
    return JsonResponse(
        {
            "members": members,
            "sessions": sessions,
            "no_expiry": len(no_expiry),
            "no_expiry_sample": sorted(no_expiry)[:10],
        }
    )


@channel_session
class GroupConsumer(WebsocketConsumer):
    """Join the drill's group with a channel session; echo frames."""

    groups = [GROUP]

    def connect(self):
        self.channel_session["joined"] = True
        self.accept()

    def receive(self, text_data=None, bytes_data=None):
        self.send(text_data="echo:%s" % text_data)


urlpatterns = [
    path("download/", download),
    path("slow-stream/", slow_stream),
    path("raise-stream/", raise_stream),
    path("drill-state/", drill_state),
]
websocket_urlpatterns = [path("ws/group/", GroupConsumer.as_consumer())]
