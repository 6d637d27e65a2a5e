from django.core.management import CommandError, call_command
from django.test import SimpleTestCase, override_settings


class RunworkerCommandTests(SimpleTestCase):
    def test_in_memory_layer_refused(self):
        """runworker fails loudly, not silently, on a process-local layer."""
        with self.assertRaisesMessage(CommandError, "'manage.py runstack'"):
            call_command("runworker")

    @override_settings(
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": "django_fork.channels.layers.inmemory.InMemoryChannelLayer"
            },
            "other": {
                "BACKEND": "django_fork.channels.layers.inmemory.InMemoryChannelLayer"
            },
        }
    )
    def test_unknown_layer_alias(self):
        with self.assertRaisesMessage(Exception, "'missing'"):
            call_command("runworker", "--layer", "missing")
