"""The chat room consumer: rooms are groups, names come from the session."""

from django_fork.channels.consumer import WebsocketConsumer
from django_fork.contrib.sessions.channel import channel_and_http_session


def room_group(room):
    return "chat-%s" % room


@channel_and_http_session
class ChatConsumer(WebsocketConsumer):
    def connect(self):
        if not self.http_session or not self.http_session.get("chat_name"):
            # No name chosen on the room page: refuse the handshake (403).
            self.close()
            return
        self._run(
            self.channel_layer.group_add(
                room_group(self.kwargs["room"]), self.reply_channel
            )
        )
        self.accept()

    def receive(self, text_data=None, bytes_data=None):
        if text_data and text_data.strip():
            name = self.http_session.get("chat_name")
            self.group_send(
                room_group(self.kwargs["room"]), text_data="%s: %s" % (name, text_data)
            )

    def disconnect(self, code):
        self._run(
            self.channel_layer.group_discard(
                room_group(self.kwargs["room"]), self.reply_channel
            )
        )
