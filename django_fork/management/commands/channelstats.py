import json
import time

from django.core.management.base import BaseCommand, CommandError

from django_fork.channels.exceptions import ChannelError, InvalidChannelLayerError
from django_fork.channels.layers import DEFAULT_CHANNEL_LAYER_ALIAS, channel_layers

#: (field, table heading, Prometheus metric, type, help), in table order.
FIELDS = [
    ("depth", "DEPTH", "depth", "gauge", "Messages waiting on the channel."),
    (
        "oldest_age",
        "OLDEST(s)",
        "oldest_age_seconds",
        "gauge",
        "Seconds the oldest waiting message has waited.",
    ),
    ("capacity", "CAPACITY", "capacity", "gauge", "Capacity of the channel."),
    ("in_rate", "IN/s", "in_rate", "gauge", "Messages sent per second, lately."),
    (
        "out_rate",
        "OUT/s",
        "out_rate",
        "gauge",
        "Messages received per second, lately.",
    ),
    ("sent", "SENT", "sent_total", "counter", "Messages sent."),
    ("received", "RECEIVED", "received_total", "counter", "Messages received."),
    (
        "full",
        "FULL",
        "full_total",
        "counter",
        "Sends refused because the channel was full.",
    ),
    (
        "consumers",
        "CONSUMERS",
        "consumers",
        "gauge",
        "Receivers seen on the channel lately.",
    ),
]


class Command(BaseCommand):
    help = (
        "Show the load of channel layer channels: depth, age of the oldest "
        "message, rates in and out, ChannelFull count and consumers seen."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "channels",
            nargs="*",
            metavar="channel",
            help="Channels to show (default: every channel with recent activity).",
        )
        parser.add_argument(
            "--layer",
            default=DEFAULT_CHANNEL_LAYER_ALIAS,
            help="The CHANNEL_LAYERS alias to query (default: %(default)s).",
        )
        output = parser.add_mutually_exclusive_group()
        output.add_argument(
            "--json", action="store_true", help="Print the figures as JSON."
        )
        output.add_argument(
            "--prometheus",
            action="store_true",
            help="Print the figures in the Prometheus text exposition format.",
        )
        parser.add_argument(
            "--watch",
            type=float,
            metavar="SECONDS",
            help="Print the figures again every SECONDS, until interrupted.",
        )
        parser.add_argument(
            "--iterations",
            type=int,
            metavar="N",
            help="With --watch, stop after N reports.",
        )

    def handle(self, *args, **options):
        try:
            layer = channel_layers[options["layer"]]
            layer.require_extension("stats")
        except (InvalidChannelLayerError, NotImplementedError) as e:
            raise CommandError(str(e))
        if options["watch"] is not None and options["watch"] <= 0:
            raise CommandError("--watch must be a positive number of seconds.")
        channels = options["channels"] or None
        iterations = options["iterations"]
        count = 0
        try:
            while True:
                try:
                    stats = layer.stats_sync(channels)
                except ChannelError as e:
                    raise CommandError("Cannot read the channel stats: %s" % e)
                self.stdout.write(self.render(stats, options))
                count += 1
                if options["watch"] is None or count == iterations:
                    break
                self.stdout.flush()
                time.sleep(options["watch"])
        except KeyboardInterrupt:
            pass

    def render(self, stats, options):
        if options["json"]:
            return json.dumps(stats, indent=2, sort_keys=True)
        if options["prometheus"]:
            return prometheus(stats, options["layer"])
        return table(stats)


def _number(value):
    if isinstance(value, float):
        return "%.1f" % value if value < 1000 else "%.0f" % value
    return str(value)


def table(stats):
    """Return stats as a text table, one row per channel."""
    headings = ["CHANNEL"] + [heading for _, heading, _, _, _ in FIELDS]
    rows = [
        [channel] + [_number(figures[field]) for field, _, _, _, _ in FIELDS]
        for channel, figures in sorted(stats.items())
    ]
    if not rows:
        return "No channel has seen any activity lately."
    widths = [
        max(len(row[i]) for row in [headings] + rows) for i in range(len(headings))
    ]
    lines = []
    for row in [headings] + rows:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:])
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _label(value):
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus(stats, alias):
    """Return stats in the Prometheus text exposition format (0.0.4)."""
    lines = []
    for field, _, metric, kind, description in FIELDS:
        name = "django_fork_channel_%s" % metric
        lines.append("# HELP %s %s" % (name, description))
        lines.append("# TYPE %s %s" % (name, kind))
        for channel, figures in sorted(stats.items()):
            lines.append(
                '%s{layer="%s",channel="%s"} %s'
                % (name, _label(alias), _label(channel), figures[field])
            )
    return "\n".join(lines)
