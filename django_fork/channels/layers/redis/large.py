"""
Large messages: sent with plain commands, not through the send script.
"""

import time

from .connection import script_on, timed
from .scripts import SEND

#: Bytes from which a message is sent with plain commands, not the send
#: script: a body passed through Lua costs Redis about 1.5 ms per MiB in
#: copies, the plain commands a round trip more when the channel is full.
LARGE_MESSAGE = 8192


class LargeMessagesMixin:
    """Push large bodies with RPUSH; check the capacity after the push."""

    def _large_push(self, shard, args):
        """
        Return (key, element, depth index, commands) that push a large
        message to its list with plain commands, in the format the send
        script writes; the reply at depth index is the channel's depth.
        """
        _, kind, channel, body, _, expiry = args[:6]
        stamp = b"%d:" % shard.server_ms()
        if kind == b"p":
            name = channel[: channel.index("!") + 1].encode()
            key = self._p_prefix + name
            depths = self._n_prefix + name
            element = b"%s%s:%s" % (stamp, channel.encode(), body)
            return (
                key,
                element,
                1,
                [
                    ("RPUSH", key, element),
                    ("HINCRBY", depths, channel, 1),
                    ("PEXPIRE", key, expiry),
                    ("PEXPIRE", depths, expiry),
                ],
            )
        key = self._c_prefix + channel.encode()
        element = stamp + body
        if "?" in channel:
            counter = self._n_prefix + channel.encode()
            return (
                key,
                element,
                1,
                [
                    ("RPUSH", key, element),
                    ("INCR", counter),
                    ("PEXPIRE", key, expiry),
                    ("PEXPIRE", counter, expiry),
                ],
            )
        return key, element, 0, [("RPUSH", key, element), ("PEXPIRE", key, expiry)]

    def _take_back(self, args, key, element):
        """Return the commands that take back an overfilling push, in turn."""
        _, kind, channel = args[:3]
        undo = [("LREM", key, -1, element)]
        if kind == b"p":
            name = channel[: channel.index("!") + 1].encode()
            undo.append(("HINCRBY", self._n_prefix + name, channel, -1))
        elif "?" in channel:
            undo.append(("DECR", self._n_prefix + channel.encode()))
        return undo

    async def _send_large(self, link, shard, args):
        """
        Push a large message with plain commands; return 1, or 0 when the
        channel is full.

        The capacity is checked after the push: a push that overfilled the
        channel is taken back (unless a receiver already has it) and the
        send left to the script, which makes room by dropping expired
        messages, recounts a process-specific channel, and refuses.
        """
        if not shard.clock_measured:
            shard.set_clock(*await timed(link.call("TIME")))
        key, element, index, commands = self._large_push(shard, args)
        depth = (await link.pipeline(*commands))[index]
        if depth <= int(args[4]):
            return 1
        lrem, *rest = self._take_back(args, key, element)
        if not await link.call(*lrem):
            # Received already: it was sent.
            return 1
        for command in rest:
            await link.call(*command)
        # The caller counts the message in the stats, not the script.
        return await link.script(SEND, args[:-1] + [b"0"])

    def _send_large_sync(self, shard, args):
        """_send_large() from a thread."""
        if not shard.clock_measured:
            before = time.time() * 1000
            reply = shard.sync_call("TIME")
            shard.set_clock(before, reply, time.time() * 1000)
        key, element, index, commands = self._large_push(shard, args)
        depth = shard.sync_pipeline(*commands)[index]
        if depth <= int(args[4]):
            return 1
        lrem, *rest = self._take_back(args, key, element)
        if not shard.sync_call(*lrem):
            return 1
        for command in rest:
            shard.sync_call(*command)
        return script_on(shard.sync_call, SEND, args[:-1] + [b"0"])
