from django.apps import AppConfig


class DjangoForkConfig(AppConfig):
    name = "django_fork"
    verbose_name = "Channels"

    def ready(self):
        # In the patched tree, django.test.signals resets channel layers on
        # setting_changed as it does caches, and django.core.checks imports
        # the channel settings' checks as it does its other check modules.
        from django_fork.core.checks import channels  # NOQA
        from django_fork.test import signals  # NOQA
