from django.apps import AppConfig


class DjangoForkConfig(AppConfig):
    name = "django_fork"
    verbose_name = "Channels"

    def ready(self):
        # Reset channel layers on setting_changed, as django.test.signals
        # does for caches in the patched tree.
        # Register the channel settings' system checks, as Django's
        # django.core.checks imports its check modules in the patched tree.
        from django_fork.core.checks import channels  # NOQA
        from django_fork.test import signals  # NOQA
