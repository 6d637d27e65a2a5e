"""
runserver, serving the channel path when the project uses it.

In the patch series this is a change to Django's own runserver (and to
django.contrib.staticfiles' override of it); the overlay gets the same
command by overriding runserver from its app. Django takes a command from
the first installed app that has it, so "django_fork" must come before
"django.contrib.staticfiles" in INSTALLED_APPS (check channels.W002 says
so), and this command extends staticfiles' runserver when that app is
installed, so that static files are served as they are by it.

Without the opt-in (CHANNEL_ROUTING set, or --channels), it is the stock
command: every method defers to Django's.
"""

import errno
import os
import sys

from django.apps import apps
from django.conf import settings
from django.db import connections
from django.utils import autoreload

if apps.is_installed("django.contrib.staticfiles"):
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    from django.contrib.staticfiles.management.commands.runserver import (
        Command as RunserverCommand,
    )
else:
    from django.core.management.commands.runserver import Command as RunserverCommand

    ASGIStaticFilesHandler = None

BIND_ERRORS = {
    errno.EACCES: "You don't have permission to access that port.",
    errno.EADDRINUSE: "That port is already in use.",
    errno.EADDRNOTAVAIL: "That IP address can't be assigned to.",
}


class Command(RunserverCommand):
    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--channels",
            action="store_true",
            dest="use_channels",
            help="Serve the channel path (interface and worker threads), as "
            "when CHANNEL_ROUTING is set.",
        )

    def use_channels(self, options):
        """Return whether to serve the channel path rather than WSGI."""
        routing = getattr(settings, "CHANNEL_ROUTING", None) or {}
        return options["use_channels"] or bool(routing)

    def get_channel_application(self, *args, **options):
        """Return the interface application, serving static files in DEBUG."""
        from django_fork.channels.interface import InterfaceApplication

        application = InterfaceApplication()
        if (
            ASGIStaticFilesHandler is not None
            and options["use_static_handler"]
            and (settings.DEBUG or options["insecure_serving"])
        ):
            return ASGIStaticFilesHandler(application)
        return application

    def inner_run(self, *args, **options):
        if not self.use_channels(options):
            return super().inner_run(*args, **options)
        autoreload.raise_last_exception()
        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            self.check(display_num_errors=True)
        self.check_migrations()
        for connection in connections.all(initialized_only=True):
            connection.close()
        from django_fork.core.servers.channel import run as run_channels

        try:
            run_channels(
                self.addr,
                int(self.port),
                self.get_channel_application(*args, **options),
                ipv6=self.use_ipv6,
                threads=4 if options["use_threading"] else 1,
                on_bind=self.on_channel_bind,
            )
        except OSError as e:
            self.stderr.write("Error: %s" % BIND_ERRORS.get(e.errno, e))
            # The server runs in the reloader's thread: sys.exit() would end
            # only that thread.
            os._exit(1)
        except KeyboardInterrupt:
            sys.exit(0)

    def on_channel_bind(self, server_port):
        self.on_bind(server_port)
        self.stdout.write(
            "Serving the channel path: the interface and worker threads on "
            "the default channel layer."
        )
