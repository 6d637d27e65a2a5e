import asyncio
import signal

from django.core.management.base import BaseCommand, CommandError

from django_fork.channels.layers import DEFAULT_CHANNEL_LAYER_ALIAS, channel_layers
from django_fork.channels.layers.inmemory import InMemoryChannelLayer
from django_fork.channels.loops import LOOP_CHOICES, resolve_loop, run
from django_fork.channels.worker import Worker


class Command(BaseCommand):
    help = (
        "Run a worker that takes messages off the channel layer and runs "
        "their consumers: Django views for http.request, and every channel "
        "in CHANNEL_ROUTING."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--layer",
            default=DEFAULT_CHANNEL_LAYER_ALIAS,
            help="The CHANNEL_LAYERS alias to use (default: %(default)s).",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=4,
            help="Threads for sync consumers and views (default: %(default)s).",
        )
        parser.add_argument(
            "--only-channels",
            nargs="+",
            default=[],
            metavar="GLOB",
            help="Serve only the routed channels matching these globs.",
        )
        parser.add_argument(
            "--exclude-channels",
            nargs="+",
            default=[],
            metavar="GLOB",
            help="Do not serve the routed channels matching these globs.",
        )
        parser.add_argument(
            "--loop",
            choices=LOOP_CHOICES,
            default="auto",
            help="Event loop: uvloop when installed, for auto (default: "
            "%(default)s).",
        )

    def handle(self, *args, **options):
        layer = channel_layers[options["layer"]]
        if isinstance(layer, InMemoryChannelLayer):
            raise CommandError(
                "runworker needs a channel layer shared between processes, but "
                "the %r layer is in-memory: its messages never leave the "
                "process that sent them. Configure a Redis layer in "
                "CHANNEL_LAYERS, or run interface and workers in one process "
                "with 'manage.py runstack'." % options["layer"]
            )
        if options["threads"] < 1:
            raise CommandError("--threads must be at least 1.")
        worker = Worker(
            layer,
            threads=options["threads"],
            only_channels=options["only_channels"],
            exclude_channels=options["exclude_channels"],
        )
        if not worker.channels:
            raise CommandError(
                "No routed channel matches --only-channels/--exclude-channels. "
                "Routed channels: %s." % ", ".join(worker.routes)
            )
        self.stdout.write(
            "Worker on layer %r (%s), channels: %s, threads: %d, %s loop. "
            "Quit with CONTROL-C or SIGTERM."
            % (
                options["layer"],
                type(layer).__name__,
                ", ".join(worker.channels),
                options["threads"],
                resolve_loop(options["loop"]),
            )
        )
        run(self.serve(worker, layer), options["loop"])

    async def serve(self, worker, layer):
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, worker.stop)
        try:
            await worker.run()
        finally:
            await layer.close()
        self.stdout.write("Worker stopped after %d messages." % worker.handled)
