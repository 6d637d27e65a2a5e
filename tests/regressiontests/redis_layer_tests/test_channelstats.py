"""manage.py channelstats, on the in-memory layer and on Redis."""

import json
import os
import tempfile
from io import StringIO

from django.core.management import CommandError, call_command
from django.test import SimpleTestCase, override_settings

from django_fork.channels.layers import get_channel_layer

from .utils import RedisTestCase, start_worker, stop_process, wait_for


def channelstats(*args):
    out = StringIO()
    call_command("channelstats", *args, stdout=out)
    return out.getvalue()


class ChannelStatsInMemoryTests(SimpleTestCase):
    def setUp(self):
        layer = get_channel_layer()
        layer.flush_sync()
        for _ in range(3):
            layer.send_sync("orders", {"type": "t"})
        layer.send_sync("other", {"type": "t"})

    def test_table(self):
        output = channelstats()
        lines = output.splitlines()
        self.assertEqual(
            lines[0].split(),
            [
                "CHANNEL",
                "DEPTH",
                "OLDEST(s)",
                "CAPACITY",
                "IN/s",
                "OUT/s",
                "SENT",
                "RECEIVED",
                "FULL",
                "CONSUMERS",
            ],
        )
        orders = next(line for line in lines if line.startswith("orders"))
        self.assertEqual(orders.split()[1], "3")

    def test_channels(self):
        output = channelstats("orders")
        self.assertIn("orders", output)
        self.assertNotIn("other", output)

    def test_json(self):
        stats = json.loads(channelstats("orders", "--json"))
        self.assertEqual(stats["orders"]["depth"], 3)
        self.assertEqual(stats["orders"]["sent"], 3)

    def test_prometheus(self):
        output = channelstats("orders", "--prometheus")
        self.assertIn("# TYPE django_fork_channel_depth gauge", output)
        self.assertIn("# TYPE django_fork_channel_sent_total counter", output)
        self.assertIn(
            'django_fork_channel_depth{layer="default",channel="orders"} 3', output
        )

    def test_watch(self):
        output = channelstats("orders", "--watch", "0.01", "--iterations", "3")
        self.assertEqual(output.count("CHANNEL"), 3)

    def test_bad_options(self):
        with self.assertRaises(CommandError):
            channelstats("--watch", "0")
        with self.assertRaises(CommandError):
            channelstats("--json", "--prometheus")
        with self.assertRaisesMessage(CommandError, "'missing'"):
            channelstats("--layer", "missing")


class ChannelStatsRedisTests(RedisTestCase):
    def setUp(self):
        super().setUp()
        settings = override_settings(
            CHANNEL_LAYERS={
                "default": {
                    "BACKEND": "django_fork.channels.layers.redis.RedisChannelLayer",
                    "LOCATION": self.urls[0],
                    "OPTIONS": {"capacity": 1000},
                }
            }
        )
        settings.enable()
        self.addCleanup(settings.disable)
        self.addCleanup(lambda: get_channel_layer().close_sync())

    def depth(self):
        return json.loads(channelstats("jobs", "--json"))["jobs"]["depth"]

    def test_backlog_grows_then_drains(self):
        """
        With no consumer running, channelstats shows the backlog of "jobs"
        growing; once consumers start, it shows it draining to nothing.
        """
        sender = self.layer(capacity=1000)
        for n in range(100):
            sender.send_sync("jobs", {"type": "t", "n": n})
        first = self.depth()
        for n in range(100, 250):
            sender.send_sync("jobs", {"type": "t", "n": n})
        second = self.depth()
        self.assertEqual((first, second), (100, 250))
        table = channelstats("jobs")
        self.assertEqual(table.splitlines()[1].split()[:2], ["jobs", "250"])

        directory = tempfile.mkdtemp()
        workers = [
            start_worker(
                "consume", self.urls[0], "jobs", os.path.join(directory, str(i))
            )
            for i in range(2)
        ]
        for worker in workers:
            self.addCleanup(stop_process, worker)
        depths = []

        def drained():
            depths.append(self.depth())
            return depths[-1] == 0

        self.assertTrue(wait_for(drained, 60, interval=0.02))
        self.assertLessEqual(depths[-1], depths[0])

        def counted():
            # Receivers write their counts within FLUSH_DELAY (and the second
            # worker may have started after the first drained everything).
            stats = json.loads(channelstats("jobs", "--json"))["jobs"]
            done = stats["received"] == 250 and stats["consumers"] >= 2
            return stats if done else None

        stats = wait_for(counted, 10)
        self.assertIsNotNone(stats)
        self.assertEqual(stats["sent"], 250)
        self.assertEqual(stats["received"], 250)
        self.assertGreater(stats["out_rate"], 0)
        prometheus = channelstats("jobs", "--prometheus")
        self.assertIn(
            'django_fork_channel_received_total{layer="default",channel="jobs"} 250',
            prometheus,
        )
        for _ in workers:
            sender.send_sync("jobs", {"type": "stop"})
        for worker in workers:
            self.assertEqual(worker.wait(30), 0)

    def test_every_channel(self):
        """Without channel names, every channel with recent activity shows."""
        sender = self.layer()
        sender.send_sync("a-channel", {"type": "t"})
        sender.send_sync(sender.new_channel_sync("reply"), {"type": "t"})
        stats = json.loads(channelstats("--json"))
        self.assertEqual(stats["a-channel"]["depth"], 1)
        # Process-specific channels add up under their process prefix.
        prefix = "reply.%s!" % sender.client_prefix
        self.assertEqual(stats[prefix]["depth"], 1)
