"""
At-least-once channels: Redis streams with a consumer group.

A received message is redelivered unless ack() is called within the
visibility timeout; pumps of the "stream" family read them (XREADGROUP) and
reclaim what dead consumers left (XAUTOCLAIM).
"""

import logging
import time

from .connection import CONNECTION_ERRORS, run_script_sync
from .delivery import Item
from .scripts import ACK

logger = logging.getLogger("django_fork.channels.layers")


class StreamsMixin:
    """Entries of at-least-once streams, and their acknowledgement."""

    def _on_entry(self, pump, key, entry_id, fields):
        """Handle an at-least-once stream entry read from key (bytes)."""
        shard = pump.shard
        channel = key[len(self._q_prefix) :].decode()
        with self._lock:
            self._book_received[shard.name, channel] += 1
        self._schedule_flush(pump.state)
        token = (shard, key.decode(), entry_id)
        sent = int(entry_id.split(b"-")[0])
        remaining = sent + self.expiry_ms - shard.server_ms()
        body = fields.get(b"m") if isinstance(fields, dict) else None
        if body is None and not isinstance(fields, dict):
            body = dict(zip(fields[::2], fields[1::2])).get(b"m")
        message = None
        if remaining > 0 and body is not None:
            message = self._decode(channel, body)
        if message is None:
            # Expired or unreadable: acknowledge it, so nobody gets it.
            pump.state.spawn(self._ack_token(token))
            return
        # A message kept here longer than half the visibility timeout may be
        # redelivered elsewhere; it is then dropped here, unacknowledged.
        deadline = time.monotonic() + min(remaining / 1000, self.visibility_timeout / 2)
        self._deliver(channel, Item(message, deadline, token), pump.state)

    def _pop_unacked(self, message):
        with self._lock:
            entry = self._unacked.pop(id(message), None)
            if entry is not None and entry[0] is not message:
                self._unacked[id(message)] = entry
                entry = None
            if len(self._unacked) > 1000:
                now = time.monotonic()
                for key, (_, _, deadline) in list(self._unacked.items()):
                    if deadline < now:
                        del self._unacked[key]
        return entry[1] if entry is not None else None

    async def _ack_token(self, token):
        shard, key, entry_id = token
        state, loop = self._state_now()
        if state is None:
            state = await self._new_state(loop)
        args = [self.prefix, key, entry_id]
        try:
            await state.command(shard, lambda link: link.script(ACK, args))
        except CONNECTION_ERRORS as e:
            # The message is redelivered, which at-least-once allows.
            logger.warning("Could not acknowledge a message of %s: %s", key, e)

    async def ack(self, channel, message):
        """
        Acknowledge an at-least-once message: pass the very dict receive()
        returned. Other messages are not tracked, and acking them does
        nothing.
        """
        token = self._pop_unacked(message)
        if token is not None:
            await self._ack_token(token)

    def ack_sync(self, channel, message):
        token = self._pop_unacked(message)
        if token is not None:
            shard, key, entry_id = token
            try:
                run_script_sync(shard.sync_client(), ACK, [self.prefix, key, entry_id])
            except CONNECTION_ERRORS as e:
                logger.warning("Could not acknowledge a message of %s: %s", key, e)
