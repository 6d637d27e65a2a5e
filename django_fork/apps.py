from django.apps import AppConfig
from django.core import checks


class DjangoForkConfig(AppConfig):
    name = "django_fork"
    verbose_name = "Channels"

    def ready(self):
        # In the patched tree, django.test.signals resets channel layers on
        # setting_changed as it does caches, and django.core.checks imports
        # the channel settings' checks as it does its other check modules.
        from django_fork.core.checks import channels  # NOQA
        from django_fork.test import signals  # NOQA

        checks.register(check_app_order, channels.TAG)


def check_app_order(app_configs=None, **kwargs):
    """
    Warn when staticfiles' runserver hides this app's: Django takes a
    command from the first installed app that has it. (In the patched tree,
    runserver itself serves the channel path.)
    """
    from django.apps import apps
    from django.conf import settings

    names = [config.name for config in apps.get_app_configs()]
    staticfiles = "django.contrib.staticfiles"
    routing = getattr(settings, "CHANNEL_ROUTING", None) or {}
    if not routing or staticfiles not in names:
        return []
    if names.index(staticfiles) > names.index(DjangoForkConfig.name):
        return []
    return [
        checks.Warning(
            "CHANNEL_ROUTING is set, but 'django.contrib.staticfiles' comes "
            "before 'django_fork' in INSTALLED_APPS, so runserver is "
            "staticfiles' own and does not serve the channel path.",
            hint="Put 'django_fork' first in INSTALLED_APPS.",
            id="channels.W002",
        )
    ]
