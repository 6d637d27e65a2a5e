"""
The layer: its options, where channels live, and the hot path.

One round trip per send (a Lua script checks capacity and pushes) and one
per received message (a blocking pop by a pump, or one non-blocking pop for
all the receives waiting when messages pour in). Bookkeeping is batched and
written off the hot path (book.py). Sends fail fast with
ChannelLayerUnavailable (the interface answers 503).
"""

import asyncio
import collections
import logging
import threading

from django_fork.channels.exceptions import ChannelFull, ChannelLayerUnavailable
from django_fork.channels.layers.base import BaseChannelLayer, DiscardedChannels
from django_fork.channels.layers.serializers import get_serializer
from django_fork.channels.layers.sharding import HashRing
from django_fork.channels.names import is_short_lived, new_channel_name, stats_name

from .blocking import BlockingReceiveMixin
from .book import BookkeepingMixin
from .connection import CONNECTION_ERRORS, Shard, parse_location, script_on
from .delay import DelayMixin
from .delivery import DeliveryMixin, Waiter
from .groups import GroupsMixin
from .large import LARGE_MESSAGE, LargeMessagesMixin
from .peek import PeekMixin
from .scripts import SEND
from .state import LoopState
from .stats import StatsMixin
from .store import StoreMixin
from .streams import StreamsMixin

__all__ = ["RedisChannelLayer"]

logger = logging.getLogger("django_fork.channels.layers")


def _unreachable(channel, error):
    """Return the error of a send to channel that no shard took."""
    return ChannelLayerUnavailable(
        "Cannot send to %r: Redis is unreachable (%s)." % (channel, error)
    )


class RedisChannelLayer(
    BlockingReceiveMixin,
    DeliveryMixin,
    StreamsMixin,
    StatsMixin,
    BookkeepingMixin,
    LargeMessagesMixin,
    GroupsMixin,
    DelayMixin,
    PeekMixin,
    StoreMixin,
    BaseChannelLayer,
):
    """
    A channel layer on Redis servers (LOCATION: one shard or a list of them;
    a shard is a Redis URL, or a Sentinel URL or dict, see sentinel.py).

    Options beyond BaseChannelLayer's:

    - prefix: prefix of every Redis key (default "django_fork").
    - serializer: "msgpack" (default) or "json".
    - symmetric_encryption_keys: keys to encrypt message bodies with; the
      first encrypts, all decrypt.
    - at_least_once: glob patterns of channels delivered at least once: a
      received message is redelivered unless ack() is called within
      visibility_timeout seconds (default 30).
    - connect_timeout, socket_timeout: seconds to connect and to get an
      answer (defaults 0.5 and 5); a send fails with ChannelLayerUnavailable
      after them.
    - block_timeout: seconds a blocking receive waits in Redis before it
      is renewed (default 5).
    - max_connections: connections to each shard that run commands at once,
      per event loop (default 32); more commands wait for one to be free.
      Each pump has a blocking connection of its own, and each thread that
      calls the sync methods one.
    - connection_kwargs: more keyword arguments for redis-py clients.
    """

    extensions = [
        "groups",
        "flush",
        "stats",
        "peek",
        "delay",
        "at_least_once",
        "store",
    ]

    def __init__(
        self,
        location="redis://127.0.0.1:6379/0",
        prefix="django_fork",
        serializer="msgpack",
        symmetric_encryption_keys=None,
        at_least_once=None,
        visibility_timeout=30,
        connect_timeout=0.5,
        socket_timeout=5.0,
        block_timeout=5.0,
        max_backoff=2.0,
        max_connections=32,
        connection_kwargs=None,
        **options,
    ):
        super().__init__(location=location, **options)
        if isinstance(location, (str, dict)):
            entries = [location]
        else:
            entries = list(location or ())
        if not entries:
            raise ValueError("RedisChannelLayer needs at least one Redis URL.")
        if not prefix or any(c in prefix for c in "*?[]\\:"):
            raise ValueError("The prefix %r may not be empty or use *?[]\\:." % prefix)
        self.prefix = prefix
        self.serializer = get_serializer(serializer, symmetric_encryption_keys)
        self.at_least_once = list(at_least_once or ())
        self._alo_patterns = [self._compile_pattern(p) for p in self.at_least_once]
        self.visibility_timeout = visibility_timeout
        self.reclaim_interval = max(0.2, min(visibility_timeout / 4, 5.0))
        self.connect_timeout = connect_timeout
        self.socket_timeout = socket_timeout
        self.block_timeout = block_timeout
        self.max_backoff = max_backoff
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1.")
        self.max_connections = max_connections
        self.connection_kwargs = dict(connection_kwargs or {})
        self.expiry_ms = int(self.expiry * 1000)
        self.hold_ms = int(visibility_timeout * 1000)
        self.stream_ttl_ms = self.expiry_ms + self.hold_ms
        self.shards = {}
        for entry in entries:
            name, address = parse_location(entry)
            if name in self.shards:
                raise ValueError("Redis server %s is listed twice." % name)
            self.shards[name] = Shard(name, address, self)
        self.ring = HashRing(self.shards)
        self._single = next(iter(self.shards.values())) if len(entries) == 1 else None
        self._lock = threading.Lock()
        self._states = {}
        # channel -> deque of Waiter; channel -> deque of Item.
        self._waiters = {}
        self._buffer = {}
        # Process-specific channels of closed sockets (discard_channel()).
        self._discarded = DiscardedChannels(self.expiry)
        # id(message) -> (message, token, deadline) of unacked messages.
        self._unacked = {}
        self._book_received = collections.Counter()
        self._book_sent = collections.Counter()
        self._book_depths = collections.Counter()
        self._book_seen = set()
        self._seen_at = {}
        self._thread_flush_at = 0.0
        self._kinds = {}
        self._info = {}
        self._routes = {}
        self._send_shards = {}
        key_prefix = prefix.encode()
        self._c_prefix = key_prefix + b":c:"
        self._p_prefix = key_prefix + b":p:"
        self._q_prefix = key_prefix + b":q:"
        self._n_prefix = key_prefix + b":n:"
        self._p_prefix_str = prefix + ":p:"
        # Constant script arguments, encoded once.
        self._prefix_arg = key_prefix
        self._expiry_arg = b"%d" % self.expiry_ms
        self._hold_arg = b"%d" % self.hold_ms

    # Routing.

    def _kind(self, channel):
        """Return 'p' (process-specific), 'q' (at-least-once) or 'c'."""
        kind = self._kinds.get(channel)
        if kind is None:
            if "!" in channel:
                kind = "p"
            elif any(p.match(channel) for p in self._alo_patterns):
                kind = "q"
            else:
                kind = "c"
            if len(self._kinds) < 10000 and not is_short_lived(channel):
                self._kinds[channel] = kind
        return kind

    def _home(self, channel):
        """Return the shard a channel's memberships (and own lists) live on."""
        if self._single is not None:
            return self._single
        if "!" in channel:
            return self.shards[self.ring.get(channel[: channel.index("!") + 1])]
        return self.shards[self.ring.get(channel)]

    def _targets(self, channel):
        """Return the shards to send to, in fallback order."""
        if self._single is not None:
            return (self._single,)
        shards = self._send_shards.get(channel)
        if shards is None:
            if "!" in channel or "?" in channel:
                shards = (self._home(channel),)
            else:
                # An ordinary channel lives on its own shard, so its capacity
                # and order hold for every sender; while that shard is down
                # its messages go to the next ones on the ring, where
                # receivers (which wait on every shard) still find them.
                shards = tuple(self.shards[name] for name in self.ring.walk(channel))
            if len(self._send_shards) < 10000 and not is_short_lived(channel):
                self._send_shards[channel] = shards
        return shards

    def _keys(self, channel):
        """Return [(shard, family, key)] a receive on channel waits on."""
        routes = self._routes.get(channel)
        if routes is None:
            kind = self._kind(channel)
            if kind == "p":
                prefix = channel[: channel.index("!") + 1]
                routes = [
                    (self._home(channel), "owned", "%s:p:%s" % (self.prefix, prefix))
                ]
            else:
                if kind == "q":
                    family = "stream"
                elif "?" in channel:
                    family = "owned"
                else:
                    family = "list"
                key = "%s:%s:%s" % (self.prefix, kind, channel)
                if "?" in channel:
                    routes = [(self._home(channel), family, key)]
                else:
                    routes = [(shard, family, key) for shard in self.shards.values()]
            if len(self._routes) < 10000 and not is_short_lived(channel):
                self._routes[channel] = routes
        return routes

    # Event loops.

    def _forget_state(self, state):
        with self._lock:
            if self._states.get(state.loop) is state:
                del self._states[state.loop]

    async def _new_state(self, loop):
        with self._lock:
            for other in list(self._states):
                if other.is_closed():
                    del self._states[other]
            state = self._states.get(loop)
            if state is not None:
                return state
            state = self._states[loop] = LoopState(self, loop)
        await state.start()
        return state

    def _state_now(self):
        loop = asyncio.get_running_loop()
        return self._states.get(loop), loop

    # Send.

    def _channel_info(self, channel):
        """Return (kind, capacity, target shards, stats name) of channel."""
        info = self._info.get(channel)
        if info is None:
            self.validate_channel_name(channel)
            info = (
                self._kind(channel).encode(),
                b"%d" % self.get_capacity(channel),
                self._targets(channel),
                stats_name(channel),
            )
            if len(self._info) < 10000 and not is_short_lived(channel):
                self._info[channel] = info
        return info

    def _send_args(self, channel, message):
        """Return (target shards, stats name, arguments of the send script)."""
        kind, capacity, targets, name = self._channel_info(channel)
        body = self.serializer.dumps(message)
        return (
            targets,
            name,
            [
                self._prefix_arg,
                kind,
                channel,
                body,
                capacity,
                self._expiry_arg,
                self._hold_arg,
                b"0",
            ],
        )

    async def send(self, channel, message):
        targets, name, args = self._send_args(channel, message)
        state = self._states.get(asyncio.get_running_loop())
        if state is None:
            state = await self._new_state(asyncio.get_running_loop())
        error = None
        large = len(args[3]) >= LARGE_MESSAGE and args[1] != b"q"
        for shard in targets:
            try:
                if large:
                    sent = await state.command(
                        shard, lambda link: self._send_large(link, shard, args)
                    )
                else:
                    sent = await state.command(
                        shard, lambda link: link.script(SEND, args)
                    )
            except CONNECTION_ERRORS as e:
                shard.failed(e, "sends fail until it is back")
                error = e
                continue
            if shard.down_since is not None:
                shard.succeeded()
            self._count_send(shard, name, sent)
            if not state.flush_scheduled:
                self._schedule_flush(state)
            if not sent:
                raise ChannelFull(channel)
            return
        raise _unreachable(channel, error) from error

    def send_sync(self, channel, message):
        targets, name, args = self._send_args(channel, message)
        large = len(args[3]) >= LARGE_MESSAGE and args[1] != b"q"
        # The counts go into the bookkeeping that an event loop of this
        # layer writes soon (a worker thread's reply); with no such loop,
        # the send script counts, or a script call after a large push.
        state = self._running_state()
        if state is None and not large:
            args[-1] = b"1"
        error = None
        for shard in targets:
            try:
                if large:
                    sent = self._send_large_sync(shard, args)
                else:
                    sent = script_on(shard.sync_call, SEND, args)
            except CONNECTION_ERRORS as e:
                shard.failed(e, "sends fail until it is back")
                error = e
                continue
            shard.succeeded()
            if state is not None:
                self._count_send(shard, name, sent)
                # Wake the loop only when no flush is due: a flush clears
                # the flag before it takes the counts, so one due now
                # includes this send's.
                if not state.flush_scheduled:
                    try:
                        state.loop.call_soon_threadsafe(self._schedule_flush, state)
                    except RuntimeError:
                        # The loop closed since: write the counts now.
                        self._flush_sync()
            elif large:
                self._count_send(shard, name, sent)
                self._flush_sync()
            if not sent:
                raise ChannelFull(channel)
            return
        raise _unreachable(channel, error) from error

    def _running_state(self):
        """Return the state of an event loop of this layer still running."""
        for state in list(self._states.values()):
            if not state.closed and state.loop.is_running():
                return state
        return None

    # Receive.

    async def receive(self, channel):
        return (await self.receive_any((channel,)))[1]

    async def receive_any(self, channels):
        channels = tuple(channels)
        info = self._info
        for channel in channels:
            if channel not in info:
                self._channel_info(channel)
            if "!" in channel:
                self.validate_owner(channel)
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = await self._new_state(loop)
        with self._lock:
            found = self._take_buffered(channels)
            if found is None:
                waiter = Waiter(channels, loop)
                pumps = self._register(waiter, state)
        if self._book_depths and not state.flush_scheduled:
            # Expired messages of this process's channels were dropped.
            self._schedule_flush(state)
        if found is not None:
            return self._hand_out(*found, state)
        for pump in pumps:
            pump.kick()
        self._note_consumer(channels, state)
        try:
            await waiter.future
        except BaseException:
            with self._lock:
                if waiter.result is not None:
                    channel, item = waiter.result
                    self._buffer.setdefault(channel, collections.deque()).appendleft(
                        item
                    )
                    stale = ()
                else:
                    stale = self._forget_waiter(waiter, cancelled=True)
            for pump in stale:
                pump.wake()
            raise
        return self._hand_out(*waiter.result, state)

    def receive_sync(self, channel):
        return self.receive_any_sync([channel])[1]

    def receive_any_sync(self, channels, timeout=None):
        """
        Receive from outside an event loop. On channels can_receive_sync()
        accepts, a BLPOP in this thread (blocking.py). Elsewhere each call
        runs a private event loop (through async_to_sync) whose connections
        are closed before it returns; code that receives often from such
        channels should use receive_any().
        """
        from asgiref.sync import async_to_sync

        channels = tuple(channels)
        if self.can_receive_sync(channels):
            return self._receive_blocking(channels, timeout)

        async def receive():
            loop = asyncio.get_running_loop()
            own = loop not in self._states
            try:
                return await asyncio.wait_for(self.receive_any(channels), timeout)
            except asyncio.TimeoutError:
                raise TimeoutError("No message within %s seconds." % timeout)
            finally:
                state = self._states.get(loop)
                if own and state is not None:
                    await state.aclose()

        return async_to_sync(receive)()

    def _use_blmpop(self, version):
        """
        Return whether pumps pop with BLMPOP (Redis 7.0+: several messages
        in one blocking call) or with BLPOP and batches of LPOPs.
        """
        return version >= (7, 0)

    # Commands off the hot path.

    async def _call(self, shard, operation):
        state, loop = self._state_now()
        if state is None:
            state = await self._new_state(loop)
        try:
            return await state.command(shard, operation)
        except CONNECTION_ERRORS as e:
            shard.failed(e, "commands fail until it is back")
            raise ChannelLayerUnavailable(
                "Redis shard %s is unreachable (%s)." % (shard.name, e)
            ) from e

    def _call_sync(self, shard, operation):
        try:
            return operation(shard.sync_client())
        except CONNECTION_ERRORS as e:
            shard.failed(e, "commands fail until it is back")
            raise ChannelLayerUnavailable(
                "Redis shard %s is unreachable (%s)." % (shard.name, e)
            ) from e

    # Names.

    async def new_channel(self, prefix="specific"):
        return self.new_channel_sync(prefix)

    def new_channel_sync(self, prefix="specific"):
        name = new_channel_name(prefix, self.client_prefix)
        if self._single is None and prefix.endswith("?"):
            # A single-reader channel lives whole on its name's shard: while
            # a shard is known to be down, pick a name that lands elsewhere.
            for _ in range(8):
                if self._home(name).down_since is None:
                    break
                name = new_channel_name(prefix, self.client_prefix)
        return name

    # Close.

    async def close(self):
        """Stop pumps, put back unreceived messages, close every connection."""
        loop = asyncio.get_running_loop()
        with self._lock:
            states = list(self._states.values())
        with self._lock:
            # What this process held of its process-specific channels goes
            # with it.
            for channel, items in list(self._buffer.items()):
                for item in items:
                    if item.raw is None and item.depth is not None:
                        self._book_depths[item.depth] += 1
                kept = collections.deque(
                    item for item in items if item.raw is not None or not item.depth
                )
                if kept:
                    self._buffer[channel] = kept
                else:
                    del self._buffer[channel]
        try:
            await self._flush_async()
        except Exception as e:  # pragma: no cover
            logger.debug("Lost receive bookkeeping at close: %s", e)
        with self._lock:
            returning = any(
                item.raw is not None
                for items in self._buffer.values()
                for item in items
            )
        if returning:
            state = self._states.get(loop) or await self._new_state(loop)
            await self._sweep(state, older_than=0)
        for state in states:
            if state.loop is loop:
                await state.aclose()
            elif state.loop.is_closed():
                self._forget_state(state)
            else:
                future = asyncio.run_coroutine_threadsafe(state.aclose(), state.loop)
                try:
                    await asyncio.wait_for(asyncio.wrap_future(future), 3)
                except Exception:  # pragma: no cover
                    pass
        # A close() from a loop of its own (close_sync) leaves one behind.
        state = self._states.get(loop)
        if state is not None:
            await state.aclose()
        for shard in self.shards.values():
            shard.close_sync()

    def close_sync(self):
        from asgiref.sync import async_to_sync

        with self._lock:
            live = [s for s in self._states.values() if not s.loop.is_closed()]
        if live:
            async_to_sync(self.close)()
            return
        self._flush_sync()
        with self._lock:
            self._states.clear()
        for shard in self.shards.values():
            shard.close_sync()
