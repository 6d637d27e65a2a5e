import os

from django.apps import AppConfig


class DjangoForkConfig(AppConfig):
    name = "django_fork"
    verbose_name = "Channels"
    # The management commands live where the patch series puts them in
    # Django (django/core/management/commands/); pointing the app's path at
    # core/ lets the overlay's commands be found there without a shim.
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "core")

    def ready(self):
        # Reset channel layers on setting_changed, as django.test.signals
        # does for caches in the patched tree.
        from django_fork.test import signals  # NOQA
