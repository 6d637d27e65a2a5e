import json
import threading

from django_fork.channels.consumer import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from django_fork.contrib.sessions.channel import (
    channel_and_http_session,
    channel_session,
    http_session,
)

#: Frames seen per socket, in the order consumers handled them.
seen = {}
seen_lock = threading.Lock()
disconnects = []
count_channels = []


class EchoConsumer(WebsocketConsumer):
    def receive(self, text_data=None, bytes_data=None):
        if text_data == "close":
            self.close(4000)
        elif text_data is not None:
            self.send(text_data="echo:" + text_data)
        else:
            self.send(bytes_data=bytes_data[::-1])

    def disconnect(self, code):
        disconnects.append(code)


class RefusingConsumer(WebsocketConsumer):
    def connect(self):
        self.close()


class OrderConsumer(WebsocketConsumer):
    """Record each socket's frames in the order they are handled."""

    def receive(self, text_data=None, bytes_data=None):
        with seen_lock:
            seen.setdefault(self.reply_channel, []).append(int(text_data))


class RoomConsumer(AsyncWebsocketConsumer):
    groups = ["room"]

    async def receive(self, text_data=None, bytes_data=None):
        await self.group_send("room", text_data=text_data)


class AsyncJsonConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        await self.accept(subprotocol="json.v1")

    async def receive_json(self, content):
        await self.send_json({"got": content, "room": self.kwargs["room"]})


class SyncJsonConsumer(JsonWebsocketConsumer):
    def receive_json(self, content):
        self.send_json({"sum": sum(content)})


class FailingConsumer(WebsocketConsumer):
    def receive(self, text_data=None, bytes_data=None):
        raise RuntimeError("consumer bug")


@channel_session
class CountingConsumer(WebsocketConsumer):
    """Count frames in the channel session; report which worker served."""

    def connect(self):
        count_channels.append(self.reply_channel)
        self.channel_session["frames"] = 0
        self.accept()

    def receive(self, text_data=None, bytes_data=None):
        self.channel_session["frames"] += 1
        self.send(text_data=str(self.channel_session["frames"]))


@channel_and_http_session
class WhoAmIConsumer(WebsocketConsumer):
    def receive(self, text_data=None, bytes_data=None):
        name = self.http_session.get("name") if self.http_session else None
        self.send(text_data="%s/%s" % (name, self.user.get_username() or "anonymous"))


@channel_session
class SequenceConsumer(WebsocketConsumer):
    """Check, in the channel session, that frames arrive numbered in order."""

    def connect(self):
        self.channel_session["next"] = 0
        self.accept()

    def receive(self, text_data=None, bytes_data=None):
        if text_data == "done":
            self.send(text_data="done:%d" % self.channel_session["next"])
            return
        number = int(text_data)
        if number != self.channel_session["next"]:
            self.send(
                text_data="out of order: expected %d, got %d"
                % (self.channel_session["next"], number)
            )
        self.channel_session["next"] = number + 1


@channel_session
class AsyncCountingConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.channel_session["frames"] = 0
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        self.channel_session["frames"] += 1
        await self.send(text_data=str(self.channel_session["frames"]))


@channel_and_http_session
class RenamingConsumer(WebsocketConsumer):
    """Store a frame's text as the HTTP session's name; "fail:" then raise."""

    def receive(self, text_data=None, bytes_data=None):
        if text_data == "peek":
            self.send(text_data=self.http_session.get("name"))
            return
        failing = text_data.startswith("fail:")
        self.http_session["name"] = text_data.removeprefix("fail:")
        if failing:
            raise RuntimeError("consumer bug after a session change")
        self.send(text_data="renamed")


@channel_session
class RefusingSessionConsumer(WebsocketConsumer):
    def connect(self):
        count_channels.append(self.reply_channel)
        self.channel_session["refused"] = True
        self.close()


@http_session
class HttpOnlyConsumer(WebsocketConsumer):
    def connect(self):
        self.http_session["connected"] = True
        self.accept()


class TwoFramesConsumer(WebsocketConsumer):
    """Answer each frame with two frames."""

    def receive(self, text_data=None, bytes_data=None):
        self.send(text_data="a:" + text_data)
        self.send(text_data="b:" + text_data)


class AsyncTwoFramesConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data="a:" + text_data)
        await self.send(text_data="b:" + text_data)


class SendThenGroupConsumer(WebsocketConsumer):
    """Send a frame to the socket, then one to its group."""

    groups = ["acks"]

    def receive(self, text_data=None, bytes_data=None):
        self.send(text_data="own:" + text_data)
        self.group_send("acks", text_data="group:" + text_data)


class SendThenFailConsumer(WebsocketConsumer):
    def receive(self, text_data=None, bytes_data=None):
        self.send(text_data="before:" + text_data)
        raise RuntimeError("consumer bug after a send")


class KwargsConsumer(WebsocketConsumer):
    """Report the route's kwargs, then change them."""

    def receive(self, text_data=None, bytes_data=None):
        self.send(text_data=json.dumps(self.kwargs))
        self.kwargs["room"] = "changed"


class FailingConnect(WebsocketConsumer):
    def connect(self):
        raise RuntimeError("consumer bug on connect")
