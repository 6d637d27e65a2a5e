"""
Bursts of WebSocket events against small channel capacities: handshakes,
frames and disconnects wait for room instead of failing, and no disconnect
is lost.
"""

import asyncio
import logging

from django.test import SimpleTestCase, override_settings

from django_fork.channels.interface import InterfaceApplication
from django_fork.channels.layers import get_channel_layer

from .tests import Socket, layers, running_worker

SOCKETS = 20


@override_settings(ALLOWED_HOSTS=["testserver"])
class WebSocketBurstTests(SimpleTestCase):
    @override_settings(CHANNEL_LAYERS=layers(channel_capacity={"websocket.*": 2}))
    async def test_handshakes_and_frames_wait_for_room(self):
        """A burst of handshakes, then one frame per socket: none refused."""
        app = InterfaceApplication()
        sockets = [Socket(app, "/ws/echo/") for _ in range(SOCKETS)]
        with self.assertLogs("django_fork.channels.interface", logging.WARNING):
            async with running_worker(threads=2):
                answers = await asyncio.gather(*(s.connect() for s in sockets))
                self.assertEqual(
                    {a["type"] for a in answers}, {"websocket.accept"}, answers
                )
                for n, socket in enumerate(sockets):
                    await socket.send_text("f%d" % n)
                echoes = await asyncio.gather(*(s.receive() for s in sockets))
                self.assertEqual(
                    [e.get("text") for e in echoes],
                    ["echo:f%d" % n for n in range(SOCKETS)],
                )
                await asyncio.gather(*(s.disconnect() for s in sockets))

    @override_settings(
        CHANNEL_LAYERS=layers(channel_capacity={"websocket.disconnect": 2})
    )
    async def test_grouped_sockets_closed_at_once_leave_no_member(self):
        """Every disconnect of a burst is delivered: the group ends empty."""
        layer = get_channel_layer()
        app = InterfaceApplication()
        sockets = [Socket(app, "/ws/room/") for _ in range(SOCKETS)]
        async with running_worker(threads=2):
            for socket in sockets:
                self.assertEqual((await socket.connect())["type"], "websocket.accept")
            self.assertEqual(len(layer._groups["room"]), SOCKETS)
        # No worker runs: the disconnects find the channel full and wait.
        with self.assertLogs("django_fork.channels.interface", logging.WARNING) as cm:
            closing = asyncio.gather(*(s.disconnect() for s in sockets))
            await asyncio.sleep(0.3)
            self.assertEqual(app.sends.waiting("websocket.disconnect"), SOCKETS - 2)
            async with running_worker(threads=2):
                await closing
                for _ in range(300):
                    if "room" not in layer._groups:
                        break
                    await asyncio.sleep(0.01)
        self.assertNotIn("room", layer._groups)
        self.assertIn("0 gave up", cm.output[0])
        self.assertNotIn("Lost", "".join(cm.output))
