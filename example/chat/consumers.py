"""The chat room consumer: rooms are groups, names come from the session."""

from django_fork.channels.consumer import WebsocketConsumer
from django_fork.channels.names import MAX_NAME_LENGTH
from django_fork.contrib.sessions.channel import channel_and_http_session

GROUP_PREFIX = "chat-"
# Group names are at most MAX_NAME_LENGTH characters.
ROOM_MAX_LENGTH = MAX_NAME_LENGTH - len(GROUP_PREFIX)
# Close codes 4000-4999 are the application's (RFC 6455, section 7.4.2).
SESSION_GONE = 4001


def room_group(room):
    return GROUP_PREFIX + room


@channel_and_http_session
class ChatConsumer(WebsocketConsumer):
    def connect(self):
        if (
            len(self.kwargs["room"]) > ROOM_MAX_LENGTH
            or not self.http_session
            or not self.http_session.get("chat_name")
        ):
            # A name too long for a group, or no name chosen on the room
            # page (which says why): refuse the handshake (403).
            self.close()
            return
        self.group_add(room_group(self.kwargs["room"]))
        self.accept()

    def receive(self, text_data=None, bytes_data=None):
        if not self.http_session:
            # The user's session ended (logged out, expired) since connect.
            self.close(SESSION_GONE, "Your session has ended: reload the page.")
            return
        if text_data and text_data.strip():
            name = self.http_session.get("chat_name")
            self.group_send(
                room_group(self.kwargs["room"]), text_data="%s: %s" % (name, text_data)
            )

    def disconnect(self, code):
        self.group_discard(room_group(self.kwargs["room"]))
