"""SendQueue: sends that wait for room, and the bound on sends in progress."""

import asyncio

from django.test import SimpleTestCase

from django_fork.channels.flow import SendQueue


class HeldLayer:
    """A layer whose sends wait until released, counting those under way."""

    def __init__(self):
        self.running = 0
        self.most = 0
        self.sent = []
        self.release = asyncio.Event()

    async def send(self, channel, message):
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.release.wait()
            self.sent.append(message)
        finally:
            self.running -= 1


class SendQueueInFlightTests(SimpleTestCase):
    async def test_sends_in_progress_are_bounded(self):
        """At most max_in_flight sends run at once; the rest run in turn."""
        layer = HeldLayer()
        sends = SendQueue(max_in_flight=2)
        tasks = [
            asyncio.ensure_future(sends.send(layer, "c", {"n": n}, 5)) for n in range(5)
        ]
        await asyncio.sleep(0.01)
        self.assertEqual(layer.running, 2)
        layer.release.set()
        await asyncio.gather(*tasks)
        self.assertEqual(layer.most, 2)
        self.assertEqual(sorted(m["n"] for m in layer.sent), [0, 1, 2, 3, 4])
        self.assertEqual(sends._in_flight, 0)

    async def test_cancelled_waiting_send_frees_no_slot_twice(self):
        """A send cancelled while waiting for a slot leaves the count right."""
        layer = HeldLayer()
        sends = SendQueue(max_in_flight=1)
        first = asyncio.ensure_future(sends.send(layer, "c", {"n": 1}, 5))
        waiting = asyncio.ensure_future(sends.send(layer, "c", {"n": 2}, 5))
        third = asyncio.ensure_future(sends.send(layer, "c", {"n": 3}, 5))
        await asyncio.sleep(0.01)
        waiting.cancel()
        await asyncio.sleep(0)
        layer.release.set()
        await asyncio.gather(first, third)
        with self.assertRaises(asyncio.CancelledError):
            await waiting
        self.assertEqual([m["n"] for m in layer.sent], [1, 3])
        self.assertEqual(layer.most, 1)
        self.assertEqual(sends._in_flight, 0)
