from django.test import TestCase, override_settings


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
