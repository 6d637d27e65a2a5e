"""
The channel layer contract, written once and run against every backend.

A backend's test case mixes ChannelLayerContractTests into SimpleTestCase and
implements make_layer(**options) (and, for backends with a server, whatever
setUp it needs). Each test gets fresh layers from make_layer().
"""

import asyncio
import time

from django_fork.channels.exceptions import (
    ChannelFull,
    InvalidChannelName,
    InvalidMessage,
)
from django_fork.channels.layers.base import ChannelNotOwned


class ChannelLayerContractTests:
    #: Seconds to wait for something that should happen at once.
    timeout = 2

    def make_layer(self, **options):
        raise NotImplementedError("ChannelLayerContractTests need make_layer().")

    def layer(self, **options):
        layer = self.make_layer(**options)
        self.addCleanup(layer.close_sync)
        return layer

    async def receive(self, layer, channel):
        return await asyncio.wait_for(layer.receive(channel), self.timeout)

    def skip_without(self, layer, extension):
        """Skip the test unless layer declares extension."""
        if extension not in layer.extensions:
            self.skipTest("%s has no %r extension." % (type(layer).__name__, extension))

    async def assertNothing(self, layer, channel, wait=0.1):
        with self.assertRaises(asyncio.TimeoutError):
            await asyncio.wait_for(layer.receive(channel), wait)

    # Send and receive.

    async def test_send_receive(self):
        """A message sent to a channel is received from it, unchanged."""
        layer = self.layer()
        message = {
            "type": "test.message",
            "text": "héllo",
            "bytes": b"\x00\xff",
            "int": 3,
            "float": 1.5,
            "bool": True,
            "none": None,
            "list": [1, "two", b"3"],
            "nested": {"a": {"b": [{"c": 1}]}},
        }
        await layer.send("test-channel", message)
        self.assertEqual(await self.receive(layer, "test-channel"), message)

    async def test_tuples_become_lists(self):
        layer = self.layer()
        await layer.send("test-channel", {"type": "t", "headers": ((b"a", b"b"),)})
        received = await self.receive(layer, "test-channel")
        self.assertEqual(received["headers"], [[b"a", b"b"]])

    async def test_order_is_kept(self):
        """Messages from one sender on one channel keep their order."""
        layer = self.layer()
        for i in range(50):
            await layer.send("ordered", {"type": "t", "n": i})
        received = [(await self.receive(layer, "ordered"))["n"] for _ in range(50)]
        self.assertEqual(received, list(range(50)))

    async def test_receive_waits_for_send(self):
        layer = self.layer()
        receiver = asyncio.ensure_future(self.receive(layer, "later"))
        await asyncio.sleep(0.05)
        self.assertFalse(receiver.done())
        await layer.send("later", {"type": "t", "n": 1})
        self.assertEqual((await receiver)["n"], 1)

    async def test_each_message_received_once(self):
        """Competing receivers on one channel never share a message."""
        layer = self.layer(capacity=1000)
        received = []

        async def consume():
            while True:
                received.append((await layer.receive("work"))["n"])

        consumers = [asyncio.ensure_future(consume()) for _ in range(4)]
        for i in range(200):
            await layer.send("work", {"type": "t", "n": i})
        deadline = time.monotonic() + self.timeout
        while len(received) < 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for consumer in consumers:
            consumer.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        self.assertEqual(sorted(received), list(range(200)))

    async def test_cancelled_receive_loses_nothing(self):
        """A receive() cancelled by a timeout does not swallow a message."""
        layer = self.layer()
        for _ in range(20):
            with self.assertRaises(asyncio.TimeoutError):
                await asyncio.wait_for(layer.receive("cancel-me"), 0.001)
        await layer.send("cancel-me", {"type": "t", "n": 1})
        self.assertEqual((await self.receive(layer, "cancel-me"))["n"], 1)

    async def test_receive_any(self):
        """receive_any() takes exactly one message from one of the channels."""
        layer = self.layer()
        await layer.send("second", {"type": "t", "n": 2})
        channel, message = await asyncio.wait_for(
            layer.receive_any(["first", "second"]), self.timeout
        )
        self.assertEqual((channel, message["n"]), ("second", 2))
        waiting = asyncio.ensure_future(layer.receive_any(["first", "second"]))
        await asyncio.sleep(0.05)
        await layer.send("first", {"type": "t", "n": 1})
        channel, message = await asyncio.wait_for(waiting, self.timeout)
        self.assertEqual((channel, message["n"]), ("first", 1))
        await self.assertNothing(layer, "second")

    def channels_kept_together(self, layer, count):
        """
        Return count ordinary channel names that layer keeps in one place
        (a sharded backend's tests pick names of one shard).
        """
        return ["together.%d" % n for n in range(count)]

    async def test_receive_any_keeps_the_order_of_channels(self):
        """
        receive_any() takes from the first of its channels, in the order
        given, that has a message waiting; each channel's own order holds.
        """
        layer = self.layer()
        order = self.channels_kept_together(layer, 3)
        for n in range(3):
            for channel in reversed(order):
                await layer.send(channel, {"type": "t", "n": n})
        expected = [(channel, n) for channel in order for n in range(3)]
        received = []
        for _ in range(len(expected)):
            channel, message = await asyncio.wait_for(
                layer.receive_any(order), self.timeout
            )
            received.append((channel, message["n"]))
        self.assertEqual(received, expected)
        # The sync twin, from a thread (a worker's receiving thread).
        for n in range(2):
            for channel in reversed(order):
                await layer.send(channel, {"type": "t", "n": n})
        received = []
        for _ in range(6):
            channel, message = await asyncio.wait_for(
                asyncio.to_thread(layer.receive_any_sync, order), self.timeout
            )
            received.append((channel, message["n"]))
        self.assertEqual(received, [(c, n) for c in order for n in range(2)])

    async def test_channels_are_independent(self):
        layer = self.layer()
        await layer.send("one", {"type": "t", "n": 1})
        await self.assertNothing(layer, "two")
        self.assertEqual((await self.receive(layer, "one"))["n"], 1)

    # Names and messages.

    async def test_invalid_channel_names(self):
        layer = self.layer()
        for name in [
            "",
            "has space",
            "a" * 101,
            "two!!marks",
            "both!and?",
            "!nothing-before",
            "nothing-after?",
            "ünicode",
            "new\nline",
            None,
            b"bytes",
        ]:
            with self.subTest(name=name):
                with self.assertRaises(InvalidChannelName):
                    await layer.send(name, {"type": "t"})
                with self.assertRaises(InvalidChannelName):
                    await layer.receive(name)

    async def test_invalid_group_names(self):
        layer = self.layer()
        self.skip_without(layer, "groups")
        for name in ["", "has space", "a" * 101, "proc!x", "single?x"]:
            with self.subTest(name=name):
                with self.assertRaises(InvalidChannelName):
                    await layer.group_add(name, "member")
                with self.assertRaises(InvalidChannelName):
                    await layer.group_send(name, {"type": "t"})

    async def test_valid_channel_names(self):
        layer = self.layer()
        for name in ["http.request", "a-b_c.D9", "proc.abc!xyz", "body?x1", "a" * 100]:
            with self.subTest(name=name):
                await layer.send(name, {"type": "t", "name": name})
                self.assertEqual((await self.receive(layer, name))["name"], name)

    async def test_invalid_messages(self):
        """A message of anything but JSON-capable values and bytes fails."""
        layer = self.layer()
        for message in [
            "not a dict",
            ["list"],
            {"type": "t", "set": {1, 2}},
            {"type": "t", "object": object()},
            {"type": "t", "nested": {"deep": [object()]}},
            {1: "non-str key"},
        ]:
            with self.subTest(message=message):
                with self.assertRaises(InvalidMessage):
                    await layer.send("test-channel", message)
        await self.assertNothing(layer, "test-channel")

    async def test_sent_message_is_a_copy(self):
        """Changing a message after sending it does not change what arrives."""
        layer = self.layer()
        message = {"type": "t", "list": [1]}
        await layer.send("copy", message)
        message["list"].append(2)
        self.assertEqual((await self.receive(layer, "copy"))["list"], [1])

    # Capacity and expiry.

    async def test_capacity(self):
        """A full channel raises ChannelFull; draining it makes room."""
        layer = self.layer(capacity=3)
        for i in range(3):
            await layer.send("small", {"type": "t", "n": i})
        with self.assertRaises(ChannelFull):
            await layer.send("small", {"type": "t", "n": 3})
        self.assertEqual((await self.receive(layer, "small"))["n"], 0)
        await layer.send("small", {"type": "t", "n": 3})

    async def test_channel_capacity_patterns(self):
        """Per-channel capacities match glob patterns; the first match wins."""
        layer = self.layer(
            capacity=5,
            channel_capacity={"tiny.*": 1, "tiny.big": 10, "proc.*!*": 2},
        )
        await layer.send("tiny.big", {"type": "t"})
        with self.assertRaises(ChannelFull):
            await layer.send("tiny.big", {"type": "t"})
        for i in range(2):
            await layer.send("proc.x!a", {"type": "t"})
        with self.assertRaises(ChannelFull):
            await layer.send("proc.x!a", {"type": "t"})
        for i in range(5):
            await layer.send("other", {"type": "t"})
        with self.assertRaises(ChannelFull):
            await layer.send("other", {"type": "t"})

    async def test_expiry(self):
        """A message nobody received within expiry seconds is dropped."""
        layer = self.layer(expiry=1)
        await layer.send("expiring", {"type": "t", "n": 1})
        await asyncio.sleep(1.2)
        await layer.send("expiring", {"type": "t", "n": 2})
        self.assertEqual((await self.receive(layer, "expiring"))["n"], 2)

    async def test_expired_messages_free_capacity(self):
        layer = self.layer(expiry=1, capacity=1)
        await layer.send("full-then-free", {"type": "t", "n": 1})
        with self.assertRaises(ChannelFull):
            await layer.send("full-then-free", {"type": "t", "n": 2})
        await asyncio.sleep(1.2)
        await layer.send("full-then-free", {"type": "t", "n": 3})
        self.assertEqual((await self.receive(layer, "full-then-free"))["n"], 3)

    # Large messages (a backend may send them another way).

    async def test_large_messages(self):
        """Large bodies arrive whole, in order, on every kind of channel."""
        layer, other = self.layer_pair()
        for channel in [
            "large",
            await other.new_channel("large.body?"),
            await other.new_channel("large.reply"),
        ]:
            bodies = [bytes([i]) * (300 * 1024 + i) for i in range(3)]
            for body in bodies:
                await layer.send(channel, {"type": "t", "body": body})
            for body in bodies:
                self.assertEqual((await self.receive(other, channel))["body"], body)

    async def test_large_message_capacity(self):
        """A full channel refuses a large message, and keeps what it had."""
        layer = self.layer(capacity=2)
        for channel in ["large.full", await layer.new_channel("large.reply")]:
            for i in range(2):
                await layer.send(channel, {"type": "t", "n": i, "body": b"x" * 65536})
            with self.assertRaises(ChannelFull):
                await layer.send(channel, {"type": "t", "n": 2, "body": b"y" * 65536})
            self.assertEqual((await self.receive(layer, channel))["n"], 0)
            # A backend may hand the room back in the background (the Redis
            # layer writes the depth of a process's own channel within 50 ms).
            await asyncio.sleep(0.1)
            await layer.send(channel, {"type": "t", "n": 3, "body": b"z" * 65536})
            self.assertEqual((await self.receive(layer, channel))["n"], 1)
            self.assertEqual((await self.receive(layer, channel))["n"], 3)
            await self.assertNothing(layer, channel)

    async def test_stats_count_sends_from_threads(self):
        """Sends from other threads (a worker's views) count too."""
        layer = self.layer()
        self.skip_without(layer, "stats")
        await layer.send("warm", {"type": "t"})
        await asyncio.to_thread(layer.send_sync, "threaded", {"type": "t"})
        large = {"type": "t", "body": b"x" * 65536}
        await asyncio.to_thread(layer.send_sync, "threaded", large)
        await asyncio.sleep(0.2)
        self.assertEqual((await layer.stats(["threaded"]))["threaded"]["sent"], 2)

    def test_large_messages_sync(self):
        """The sync twins carry large messages and keep capacities too."""
        layer = self.layer(capacity=1)
        for channel in ["large.sync", layer.new_channel_sync("large.reply")]:
            layer.send_sync(channel, {"type": "t", "body": b"x" * 65536})
            with self.assertRaises(ChannelFull):
                layer.send_sync(channel, {"type": "t", "body": b"y" * 65536})
            self.assertEqual(layer.receive_sync(channel)["body"], b"x" * 65536)
        if "stats" in layer.extensions:
            stats = layer.stats_sync(["large.sync"])["large.sync"]
            self.assertEqual((stats["sent"], stats["full"]), (1, 1))

    async def test_expired_large_messages_free_capacity(self):
        layer = self.layer(expiry=1, capacity=1)
        for channel in ["large.expiring", await layer.new_channel("large.reply")]:
            await layer.send(channel, {"type": "t", "n": 1, "body": b"x" * 65536})
            with self.assertRaises(ChannelFull):
                await layer.send(channel, {"type": "t", "n": 2, "body": b"x" * 65536})
            await asyncio.sleep(1.2)
            await layer.send(channel, {"type": "t", "n": 3, "body": b"x" * 65536})
            self.assertEqual((await self.receive(layer, channel))["n"], 3)

    # Process-specific and single-reader channels.

    async def test_new_channel_names(self):
        layer = self.layer()
        names = {await layer.new_channel("http.response") for _ in range(100)}
        self.assertEqual(len(names), 100)
        for name in names:
            self.assertRegex(name, r"^http\.response\.[A-Za-z0-9_.\-]+![\w\-]+$")
        body = await layer.new_channel("http.request.body?")
        self.assertTrue(body.startswith("http.request.body?"))
        own = await layer.new_channel("mine!")
        self.assertTrue(own.startswith("mine!"))
        with self.assertRaises(InvalidChannelName):
            await layer.new_channel("bad name")

    async def test_process_specific_channels(self):
        """Concurrent receives on one process's channels each get theirs."""
        layer = self.layer()
        names = [await layer.new_channel("reply") for _ in range(50)]
        receivers = [asyncio.ensure_future(self.receive(layer, n)) for n in names]
        await asyncio.sleep(0.05)
        for i, name in enumerate(reversed(names)):
            await layer.send(name, {"type": "t", "name": name})
        results = await asyncio.gather(*receivers)
        self.assertEqual([m["name"] for m in results], names)

    async def test_process_specific_reply_sent_before_receive(self):
        layer = self.layer()
        name = await layer.new_channel("reply")
        await layer.send(name, {"type": "t", "n": 1})
        self.assertEqual((await self.receive(layer, name))["n"], 1)

    async def test_separate_layers_share_channels(self):
        """Two layer objects on the same store see each other's messages."""
        sender, receiver = self.layer_pair()
        name = await receiver.new_channel("reply")
        await sender.send(name, {"type": "t", "n": 1})
        await sender.send("shared", {"type": "t", "n": 2})
        self.assertEqual((await self.receive(receiver, name))["n"], 1)
        self.assertEqual((await self.receive(receiver, "shared"))["n"], 2)

    def layer_pair(self):
        """Return two layers over one store (one object when in-process)."""
        layer = self.layer()
        return layer, layer

    # Groups.

    async def test_group_send(self):
        layer = self.layer()
        self.skip_without(layer, "groups")
        await layer.group_add("room", "member-1")
        await layer.group_add("room", "member-2")
        await layer.group_add("room", "member-2")
        await layer.group_send("room", {"type": "t", "text": "hi"})
        self.assertEqual((await self.receive(layer, "member-1"))["text"], "hi")
        self.assertEqual((await self.receive(layer, "member-2"))["text"], "hi")
        await self.assertNothing(layer, "member-2")

    async def test_group_discard(self):
        layer = self.layer()
        self.skip_without(layer, "groups")
        await layer.group_add("room", "member-1")
        await layer.group_add("room", "member-2")
        await layer.group_discard("room", "member-2")
        await layer.group_discard("room", "never-a-member")
        await layer.group_send("room", {"type": "t"})
        await self.receive(layer, "member-1")
        await self.assertNothing(layer, "member-2")

    async def test_group_send_to_empty_group(self):
        layer = self.layer()
        self.skip_without(layer, "groups")
        await layer.group_send("nobody-here", {"type": "t"})

    async def test_group_send_skips_full_members(self):
        """A full member misses the message; the others still get it."""
        layer = self.layer(capacity=1)
        self.skip_without(layer, "groups")
        await layer.group_add("room", "full")
        await layer.group_add("room", "free")
        await layer.send("full", {"type": "t", "n": 0})
        await layer.group_send("room", {"type": "t", "n": 1})
        self.assertEqual((await self.receive(layer, "free"))["n"], 1)
        self.assertEqual((await self.receive(layer, "full"))["n"], 0)
        await self.assertNothing(layer, "full")

    async def test_group_send_process_specific_members(self):
        layer = self.layer()
        self.skip_without(layer, "groups")
        names = [await layer.new_channel("ws") for _ in range(10)]
        for name in names:
            await layer.group_add("chat", name)
        await layer.group_send("chat", {"type": "t", "text": "all"})
        for name in names:
            self.assertEqual((await self.receive(layer, name))["text"], "all")

    async def test_group_members_get_their_own_copy(self):
        """A receiver that changes its message changes no other member's."""
        layer = self.layer()
        self.skip_without(layer, "groups")
        for name in ("member-1", "member-2"):
            await layer.group_add("room", name)
        message = {"type": "t", "list": [1, {"x": [2]}], "nested": {"k": "v"}}
        await layer.group_send("room", message)
        message["list"].append("sender's change")
        first = await self.receive(layer, "member-1")
        first["list"][1]["x"].append(3)
        first["nested"]["k"] = "changed"
        self.assertEqual(
            await self.receive(layer, "member-2"),
            {"type": "t", "list": [1, {"x": [2]}], "nested": {"k": "v"}},
        )

    async def test_discard_channel(self):
        """
        A discarded process-specific channel (a closed socket's) keeps
        nothing: neither what waited on it nor what a group sends it later.
        """
        layer = self.layer()
        self.skip_without(layer, "groups")
        gone = await layer.new_channel("ws")
        kept = await layer.new_channel("ws")
        for name in (gone, kept):
            await layer.group_add("room", name)
        await layer.group_send("room", {"type": "t", "n": 1})
        self.assertEqual((await self.receive(layer, kept))["n"], 1)
        await layer.discard_channel(gone)
        await layer.group_send("room", {"type": "t", "n": 2})
        self.assertEqual((await self.receive(layer, kept))["n"], 2)
        if "stats" not in layer.extensions:
            return
        # What the process held is handed back in the background.
        for _ in range(int(self.timeout / 0.02)):
            depth = (await layer.stats([gone]))[gone]["depth"]
            if not depth:
                break
            await asyncio.sleep(0.02)
        self.assertEqual(depth, 0)

    async def test_group_expiry(self):
        """Memberships not renewed within group_expiry seconds lapse."""
        layer = self.layer(group_expiry=1)
        self.skip_without(layer, "groups")
        await layer.group_add("room", "stale")
        await asyncio.sleep(1.2)
        await layer.group_add("room", "fresh")
        await layer.group_send("room", {"type": "t"})
        await self.receive(layer, "fresh")
        await self.assertNothing(layer, "stale")

    # Flush, stats and extensions.

    async def test_flush(self):
        layer = self.layer()
        self.skip_without(layer, "flush")
        groups = layer.has_extension("groups")
        await layer.send("flushed", {"type": "t"})
        if groups:
            await layer.group_add("room", "member")
        await layer.flush()
        await self.assertNothing(layer, "flushed")
        if groups:
            await layer.group_send("room", {"type": "t"})
            await self.assertNothing(layer, "member")

    async def test_extensions(self):
        layer = self.layer()
        for extension in layer.extensions:
            self.assertIs(layer.has_extension(extension), True)
            layer.require_extension(extension)
        self.assertIs(layer.has_extension("teleport"), False)
        with self.assertRaisesMessage(NotImplementedError, "'teleport'"):
            layer.require_extension("teleport")

    async def test_stats(self):
        """stats() reports depth, age, counts and consumers per channel."""
        layer = self.layer(capacity=2)
        self.skip_without(layer, "stats")
        await layer.send("busy", {"type": "t"})
        await layer.send("busy", {"type": "t"})
        with self.assertRaises(ChannelFull):
            await layer.send("busy", {"type": "t"})
        await asyncio.sleep(0.05)
        stats = (await layer.stats(["busy"]))["busy"]
        self.assertEqual(stats["depth"], 2)
        self.assertEqual(stats["capacity"], 2)
        self.assertEqual(stats["full"], 1)
        self.assertEqual(stats["sent"], 2)
        self.assertGreater(stats["oldest_age"], 0)
        self.assertGreater(stats["in_rate"], 0)
        await self.receive(layer, "busy")
        stats = (await layer.stats(["busy"]))["busy"]
        self.assertEqual(stats["depth"], 1)
        self.assertEqual(stats["received"], 1)
        self.assertGreaterEqual(stats["consumers"], 1)
        for key in ["in_rate", "out_rate"]:
            self.assertIsInstance(stats[key], float)

    async def test_stats_of_short_lived_channels(self):
        """
        Process-specific and single-reader channels count under their prefix
        ("name!", "name?"): one entry for many short-lived channels.
        """
        layer = self.layer()
        self.skip_without(layer, "stats")
        replies = [await layer.new_channel("agg.reply") for _ in range(3)]
        bodies = [await layer.new_channel("agg.body?") for _ in range(2)]
        for name in replies + bodies:
            await layer.send(name, {"type": "t"})
        await self.receive(layer, replies[0])
        await self.receive(layer, bodies[0])
        # Another task: as an interface server's next request would.
        await asyncio.ensure_future(self.receive(layer, replies[2]))
        await asyncio.sleep(0.2)
        stats = await layer.stats()
        # The receivers of a process's short-lived channels: the process.
        self.assertEqual(stats[replies[0][: replies[0].index("!") + 1]]["consumers"], 1)
        # (A backend may take a process's messages off the store before
        # they are received: "received" counts those too.)
        process = replies[0][: replies[0].index("!") + 1]
        self.assertEqual(stats[process]["sent"], 3)
        self.assertGreaterEqual(stats[process]["received"], 1)
        self.assertEqual(
            {key: stats["agg.body?"][key] for key in ["sent", "received"]},
            {"sent": 2, "received": 1},
        )
        self.assertFalse(set(replies + bodies) & set(stats))
        # A channel asked for by name has its own depth.
        asked = await layer.stats([bodies[1]])
        self.assertEqual(asked[bodies[1]]["depth"], 1)

    # Sync twins.

    def test_sync_twins(self):
        """Every async method has a sync twin usable outside an event loop."""
        layer = self.layer()
        layer.send_sync("sync-channel", {"type": "t", "n": 1})
        self.assertEqual(layer.receive_sync("sync-channel")["n"], 1)
        name = layer.new_channel_sync("reply")
        if layer.has_extension("groups"):
            layer.group_add_sync("room", name)
            layer.group_send_sync("room", {"type": "t", "n": 2})
            layer.group_discard_sync("room", name)
        else:
            layer.send_sync(name, {"type": "t", "n": 2})
        self.assertEqual(layer.receive_any_sync([name])[1]["n"], 2)
        if "stats" not in layer.extensions or "flush" not in layer.extensions:
            return
        layer.send_sync("sync-channel", {"type": "t"})
        self.assertEqual(layer.stats_sync(["sync-channel"])["sync-channel"]["depth"], 1)
        layer.flush_sync()
        self.assertEqual(layer.stats_sync(["sync-channel"])["sync-channel"]["depth"], 0)

    # Looking without taking (the "peek" extension).

    def peek_layer(self, **options):
        layer = self.layer(**options)
        if "peek" not in layer.extensions:
            self.skipTest("%s has no 'peek' extension." % type(layer).__name__)
        return layer

    async def test_peek(self):
        """peek() shows waiting messages, oldest first, and takes none."""
        layer = self.peek_layer()
        for n in range(3):
            await layer.send("peeked", {"type": "t", "n": n})
        self.assertEqual([m["n"] for m in await layer.peek("peeked")], [0, 1, 2])
        self.assertEqual([m["n"] for m in await layer.peek("peeked", 2)], [0, 1])
        self.assertEqual((await self.receive(layer, "peeked"))["n"], 0)
        self.assertEqual([m["n"] for m in await layer.peek("peeked")], [1, 2])
        self.assertEqual(await layer.peek("nothing-here"), [])

    async def test_peek_returns_copies(self):
        layer = self.peek_layer()
        await layer.send("peeked", {"type": "t", "list": [1]})
        (peeked,) = await layer.peek("peeked")
        peeked["list"].append(2)
        self.assertEqual((await self.receive(layer, "peeked"))["list"], [1])

    async def test_peek_process_specific_channels(self):
        """A process's channels are peeked one by one, group sends included."""
        layer = self.peek_layer()
        first = await layer.new_channel("reply")
        second = await layer.new_channel("reply")
        await layer.send(first, {"type": "t", "n": 1})
        await layer.group_add("room", second)
        await layer.group_send("room", {"type": "t", "n": 2})
        self.assertEqual([m["n"] for m in await layer.peek(first)], [1])
        self.assertEqual([m["n"] for m in await layer.peek(second)], [2])
        self.assertEqual((await self.receive(layer, second))["n"], 2)

    async def test_peek_skips_expired_messages(self):
        layer = self.peek_layer(expiry=0.1)
        await layer.send("peeked", {"type": "t"})
        await asyncio.sleep(0.2)
        self.assertEqual(await layer.peek("peeked"), [])

    async def test_peek_invalid_name(self):
        layer = self.peek_layer()
        with self.assertRaises(InvalidChannelName):
            await layer.peek("bad name")

    def test_peek_sync(self):
        layer = self.peek_layer()
        layer.send_sync("peeked", {"type": "t", "n": 1})
        self.assertEqual(layer.peek_sync("peeked"), [{"type": "t", "n": 1}])
        self.assertEqual(layer.receive_sync("peeked")["n"], 1)

    # Delayed delivery (the "delay" extension).

    async def test_send_later(self):
        """A delayed message arrives no earlier than asked, and arrives."""
        layer = self.layer()
        if "delay" not in layer.extensions:
            self.skipTest("%s has no 'delay' extension." % type(layer).__name__)
        start = time.monotonic()
        await layer.send_later("delayed", {"type": "t", "n": 2}, 0.5)
        await layer.send_later("delayed", {"type": "t", "n": 1}, 0.2)
        await layer.send("delayed", {"type": "t", "n": 0})
        self.assertEqual((await self.receive(layer, "delayed"))["n"], 0)
        self.assertEqual((await self.receive(layer, "delayed"))["n"], 1)
        self.assertGreaterEqual(time.monotonic() - start, 0.2)
        self.assertEqual((await self.receive(layer, "delayed"))["n"], 2)
        self.assertGreaterEqual(time.monotonic() - start, 0.5)

    async def test_send_later_into_full_channel_is_not_lost(self):
        layer = self.layer(capacity=1)
        if "delay" not in layer.extensions:
            self.skipTest("%s has no 'delay' extension." % type(layer).__name__)
        await layer.send("busy", {"type": "t", "n": 0})
        await layer.send_later("busy", {"type": "t", "n": 1}, 0.05)
        await asyncio.sleep(0.2)
        self.assertEqual((await self.receive(layer, "busy"))["n"], 0)
        self.assertEqual((await self.receive(layer, "busy"))["n"], 1)

    async def test_capacity_holds_after_the_owner_received(self):
        """
        The capacity of a process-specific or single-reader channel counts
        what the owner's process already holds of it, not only what waits
        in the store (a slow reader's messages do not pile up in its
        process).
        """
        layer = self.layer(capacity=3)
        for prefix in ["capacity.reply", "capacity.body?"]:
            with self.subTest(prefix=prefix):
                channel = await layer.new_channel(prefix)
                await layer.send(channel, {"type": "t", "n": -1})
                self.assertEqual((await self.receive(layer, channel))["n"], -1)
                accepted = []
                refused = 0
                for n in range(20):
                    try:
                        await layer.send(channel, {"type": "t", "n": n})
                    except ChannelFull:
                        refused += 1
                    else:
                        accepted.append(n)
                    await asyncio.sleep(0.01)
                self.assertEqual((len(accepted), refused), (3, 17))
                for n in accepted:
                    self.assertEqual((await self.receive(layer, channel))["n"], n)
                await self.assertNothing(layer, channel)
                # Received, the messages make room again.
                await layer.send(channel, {"type": "t", "n": 20})
                self.assertEqual((await self.receive(layer, channel))["n"], 20)

    async def test_only_the_owner_receives_process_specific_channels(self):
        """
        A receive on another layer instance's process-specific channel is
        refused, and takes nothing from its owner.
        """
        owner, sender = self.layer_pair()
        other = self.layer()
        first = await owner.new_channel("owned.reply")
        second = await owner.new_channel("owned.reply")
        await sender.send(first, {"type": "t", "n": 1})
        await sender.send(second, {"type": "t", "n": 2})
        with self.assertRaisesMessage(ChannelNotOwned, owner.client_prefix):
            await other.receive(first)
        with self.assertRaises(ChannelNotOwned):
            await other.receive_any(["ordinary", second])
        with self.assertRaises(ChannelNotOwned):
            await asyncio.to_thread(other.receive_sync, first)
        self.assertIsInstance(ChannelNotOwned("x"), InvalidChannelName)
        self.assertEqual((await self.receive(owner, first))["n"], 1)
        self.assertEqual((await self.receive(owner, second))["n"], 2)
        # A prefix the caller chose is the caller's to read.
        chosen = await other.new_channel("chosen!")
        await other.send(chosen, {"type": "t", "n": 3})
        self.assertEqual((await self.receive(other, chosen))["n"], 3)

    async def test_turnover_beyond_capacity_is_not_full(self):
        """A channel that has passed more than its capacity is not full."""
        layer = self.layer(capacity=10)
        for channel in ["turnover", await layer.new_channel("reply")]:
            for i in range(50):
                await layer.send(channel, {"type": "t", "n": i})
                self.assertEqual((await self.receive(layer, channel))["n"], i)

    # The "store" extension.

    def store_layer(self):
        layer = self.layer()
        self.skip_without(layer, "store")
        return layer

    def store_layers(self):
        writer, reader = self.layer_pair()
        self.skip_without(writer, "store")
        return writer, reader

    async def test_store(self):
        """A stored value is found under its key by another layer object."""
        writer, reader = self.store_layers()
        value = {"status": "READY", "args": [1, "two"], "nested": {"b": b"\x00"}}
        await writer.store_set("result.1", value, 60)
        self.assertEqual(await reader.store_get("result.1"), value)
        self.assertIsNone(await reader.store_get("result.2"))

    async def test_store_add_keeps_an_existing_value(self):
        layer = self.store_layer()
        self.assertIs(await layer.store_add("result.1", {"n": 1}, 60), True)
        self.assertIs(await layer.store_add("result.1", {"n": 2}, 60), False)
        self.assertEqual(await layer.store_get("result.1"), {"n": 1})

    async def test_store_swap_returns_the_replaced_value(self):
        layer = self.store_layer()
        self.assertIsNone(await layer.store_swap("result.1", {"n": 1}, 60))
        self.assertEqual(await layer.store_swap("result.1", {"n": 2}, 60), {"n": 1})
        self.assertEqual(await layer.store_get("result.1"), {"n": 2})

    async def test_store_timeout(self):
        """A value is gone once its timeout has passed."""
        layer = self.store_layer()
        await layer.store_set("short", {"n": 1}, 0.1)
        await layer.store_set("long", {"n": 2}, 60)
        await asyncio.sleep(0.25)
        self.assertIsNone(await layer.store_get("short"))
        self.assertIs(await layer.store_add("short", {"n": 3}, 60), True)
        self.assertEqual(await layer.store_get("long"), {"n": 2})

    async def test_stored_value_is_a_copy(self):
        layer = self.store_layer()
        value = {"list": [1]}
        await layer.store_set("copied", value, 60)
        value["list"].append(2)
        got = await layer.store_get("copied")
        got["list"].append(3)
        self.assertEqual(await layer.store_get("copied"), {"list": [1]})

    async def test_store_rejects_invalid_values(self):
        layer = self.store_layer()
        with self.assertRaises(InvalidMessage):
            await layer.store_set("bad", {"when": object()}, 60)

    def test_store_sync_twins(self):
        writer, reader = self.store_layers()
        writer.store_set_sync("sync.1", {"n": 1}, 60)
        self.assertIs(writer.store_add_sync("sync.1", {"n": 2}, 60), False)
        self.assertIs(writer.store_add_sync("sync.2", {"n": 2}, 60), True)
        self.assertEqual(writer.store_swap_sync("sync.2", {"n": 3}, 60), {"n": 2})
        self.assertEqual(reader.store_get_sync("sync.1"), {"n": 1})
        self.assertEqual(reader.store_get_sync("sync.2"), {"n": 3})
        self.assertIsNone(reader.store_get_sync("sync.3"))

    async def test_flush_drops_stored_values(self):
        layer = self.store_layer()
        await layer.store_set("flushed", {"n": 1}, 60)
        await layer.flush()
        self.assertIsNone(await layer.store_get("flushed"))
