from django.contrib.auth.models import User
from django.test import TestCase, modify_settings, override_settings

from django_fork.channels.layers import get_channel_layer


@modify_settings(INSTALLED_APPS={"prepend": "django.contrib.admin"})
@override_settings(ROOT_URLCONF="load_page_tests.urls")
class LoadPageTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.staff = User.objects.create_user("staff", password="pw", is_staff=True)
        cls.user = User.objects.create_user("user", password="pw")

    def test_staff_only(self):
        for path in ["/admin/channels/load/", "/admin/channels/load/data/"]:
            with self.subTest(path=path, user=None):
                response = self.client.get(path)
                self.assertRedirects(
                    response,
                    "/admin/login/?next=" + path,
                    fetch_redirect_response=False,
                )
            self.client.force_login(self.user)
            with self.subTest(path=path, user="not staff"):
                response = self.client.get(path)
                self.assertEqual(response.status_code, 302)
            self.client.logout()

    def test_page(self):
        self.client.force_login(self.staff)
        response = self.client.get("/admin/channels/load/")
        self.assertContains(response, "Channel load")
        for label in ["Depth", "Oldest message", "In (messages/s)", "ChannelFull"]:
            self.assertContains(response, label)
        self.assertContains(response, "/admin/channels/load/data/?layer=default")

    def test_data_are_channelstats_figures(self):
        layer = get_channel_layer()
        layer.flush_sync()
        for i in range(3):
            layer.send_sync("load-tests", {"type": "test.message", "n": i})
        self.client.force_login(self.staff)
        data = self.client.get("/admin/channels/load/data/").json()
        self.assertIsInstance(data["time"], float)
        figures = data["channels"]["load-tests"]
        self.assertEqual(figures["depth"], 3)
        self.assertEqual(
            sorted(figures), ["depth", "full", "in_rate", "oldest_age", "out_rate"]
        )
        self.assertEqual(
            figures["depth"], layer.stats_sync(["load-tests"])["load-tests"]["depth"]
        )
        layer.flush_sync()

    def test_unknown_layer(self):
        self.client.force_login(self.staff)
        response = self.client.get("/admin/channels/load/data/?layer=nope")
        self.assertEqual(response.status_code, 400)
        self.assertIn("nope", response.json()["error"])
