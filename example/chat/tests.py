from asgiref.sync import sync_to_async
from django.test import Client, TestCase, override_settings

from django_fork.test import ChannelTransactionTestCase
from django_fork.test.websocket import WebsocketTestClient

from .consumers import ROOM_MAX_LENGTH


@override_settings(
    TASKS={
        "default": {
            "BACKEND": "django_fork.channels.task_backend.ChannelTaskBackend",
            "QUEUES": ["default"],
        }
    }
)
class ChatPageTests(TestCase):
    def test_pick_a_name(self):
        response = self.client.get("/chat/lobby/")
        self.assertContains(response, "Join")
        self.assertNotContains(response, "new WebSocket")
        response = self.client.post("/chat/lobby/", {"name": "Ada"}, follow=True)
        self.assertContains(response, '<strong id="me">Ada</strong>', html=True)
        self.assertContains(response, "/ws/chat/lobby/")
        self.assertEqual(self.client.session["chat_name"], "Ada")

    def test_announcement_enqueues_a_task(self):
        response = self.client.post("/chat/lobby/announce/", {"text": "hi"})
        self.assertRedirects(response, "/chat/lobby/")

    def test_room_name_too_long(self):
        """A room name too long for a group is refused with a reason."""
        room = "r" * (ROOM_MAX_LENGTH + 1)
        response = self.client.get("/chat/%s/" % room)
        self.assertContains(
            response,
            "A room name has at most %d characters; this one has %d."
            % (ROOM_MAX_LENGTH, ROOM_MAX_LENGTH + 1),
            status_code=400,
        )
        self.assertNotContains(response, "new WebSocket", status_code=400)
        self.assertEqual(self.client.get("/chat/%s/" % room[1:]).status_code, 200)

    def test_name_error_next_to_its_field(self):
        response = self.client.post("/chat/lobby/", {"name": "x" * 31})
        self.assertContains(response, 'maxlength="30"')
        content = response.content.decode()
        field = content.index('name="name"')
        error = content.index('class="errorlist"')
        form_end = content.index("</form>")
        self.assertLess(field, error)
        self.assertLess(error, form_end)


class ChatConsumerTests(ChannelTransactionTestCase):
    """The chat over the channel path: sessions in the database."""

    def join(self, room, name):
        client = Client()
        client.post("/chat/%s/" % room, {"name": name})
        return client

    async def test_broadcast_reaches_every_socket(self):
        clients = [
            await sync_to_async(self.join)("lobby", "user%d" % i) for i in range(3)
        ]
        sockets = [WebsocketTestClient("/ws/chat/lobby/", client=c) for c in clients]
        for socket in sockets:
            self.assertIs(await socket.connect(), True)
        try:
            await sockets[0].send_text("hello")
            for socket in sockets:
                self.assertEqual(await socket.receive_text(timeout=5), "user0: hello")
        finally:
            for socket in sockets:
                await socket.disconnect()

    async def test_room_name_too_long_is_refused(self):
        """The handshake is refused; the consumer does not crash."""
        room = "r" * (ROOM_MAX_LENGTH + 1)
        client = await sync_to_async(self.join)("lobby", "ada")
        socket = WebsocketTestClient("/ws/chat/%s/" % room, client=client)
        with self.assertNoLogs("django_fork", "ERROR"):
            self.assertIs(await socket.connect(), False)
        # The interface's refusal: 403 to the handshake over a real socket.
        self.assertEqual(socket.close_code, 1008)
