"""The overlay's own check: its runserver must come before staticfiles'."""

from django.test import SimpleTestCase

from django_fork.apps import check_app_order


class AppOrderCheckTests(SimpleTestCase):
    """runserver serves the channel path only if django_fork's wins."""

    def test_staticfiles_first(self):
        apps = ["django.contrib.staticfiles", "django_fork"]
        with self.settings(INSTALLED_APPS=apps, CHANNEL_ROUTING="check_tests.routing"):
            (warning,) = check_app_order()
        self.assertEqual(warning.id, "channels.W002")
        self.assertIn("'django_fork' first", warning.hint)

    def test_silent(self):
        for apps, routing in [
            (["django_fork", "django.contrib.staticfiles"], "check_tests.routing"),
            (["django_fork"], "check_tests.routing"),
            (["django.contrib.staticfiles", "django_fork"], {}),
        ]:
            with self.subTest(apps=apps, routing=routing):
                with self.settings(INSTALLED_APPS=apps, CHANNEL_ROUTING=routing):
                    self.assertEqual(check_app_order(), [])
