"""
The channel layer contract.

A channel layer carries messages between processes on named channels. Every
backend provides the async methods below; each has a sync twin with a
``_sync`` suffix for code that runs outside an event loop. The layer API is
async-native and keeps the channel layer spec's method names (send, receive,
group_send, ...), which existing Channels consumer code calls with ``await``.

Rules every backend keeps (and the contract tests check):

- Messages are dicts of JSON-capable values plus bytes; anything else raises
  InvalidMessage at send time, never later at the receiver.
- Names follow django_fork.channels.names; a bad name raises
  InvalidChannelName.
- Only its owner receives from a process-specific channel that
  new_channel("name") made ("name.<client prefix>!..."): a receive on
  another layer instance's raises ChannelNotOwned and takes nothing.
- send() raises ChannelFull when the channel holds its capacity of messages;
  it never blocks.
- A message not received within ``expiry`` seconds is dropped.
- receive() blocks until a message arrives; cancelling it loses no message.
- Delivery is at most once: a received message is gone from the layer.
- The messages of one channel from one sender come out in the order sent.
- receive_any() takes from the first of its channels, in the order given,
  that has a message waiting: a worker's channel order is its preference
  (task priorities rely on it). A backend that spreads channels over
  several servers keeps this order among the channels of one server.

Layers with the "store" extension also keep values under keys, each for a
timeout, where every process of the layer finds them (task results live
there): store_set(), store_add(), store_swap() and store_get(). A value is
a dict of message values; it is kept by the layer's own connections, with
no client built per operation.
"""

import collections
import fnmatch
import re
import secrets
import time

from asgiref.sync import async_to_sync

from django_fork.channels.exceptions import InvalidChannelName, InvalidMessage
from django_fork.channels.names import (
    is_short_lived,
    new_channel_name,
    validate_channel_name,
    validate_group_name,
)

_SCALARS = (str, bytes, int, float, bool, type(None))
_HEX = frozenset("0123456789abcdef")
#: Length of a layer instance's client prefix (secrets.token_hex(6)).
CLIENT_PREFIX_LENGTH = 12


class ChannelNotOwned(InvalidChannelName):
    """
    A receive on a process-specific channel of another layer instance: its
    messages are that instance's, and taking them would lose them.
    """

    status_code = 500


def copy_message(message):
    """
    Return a copy of message, checking that it holds only JSON-capable values
    and bytes. Tuples become lists, as they would on any wire format.
    """
    if not isinstance(message, dict):
        raise InvalidMessage(
            "A message must be a dict, not %s." % type(message).__name__
        )
    try:
        return _copy_plain(message)
    except _NotPlain:
        # A subclass of an allowed type, or a value that is not allowed:
        # the checking copy says where.
        return _copy_value(message, "message")


class _NotPlain(Exception):
    pass


_PLAIN_SCALARS = frozenset(_SCALARS)


def _copy_plain(value):
    """
    Copy a message made of the exact allowed types, which is what codecs
    build: one type lookup per value, and no description of where each
    value is until one is not allowed. Raise _NotPlain at anything else.
    """
    kind = type(value)
    if kind is dict:
        copied = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            copied[key] = item if type(item) in _PLAIN_SCALARS else _copy_plain(item)
        return copied
    if kind is list or kind is tuple:
        return [
            item if type(item) in _PLAIN_SCALARS else _copy_plain(item)
            for item in value
        ]
    if kind in _PLAIN_SCALARS:
        return value
    raise _NotPlain


def _copy_value(value, where):
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, dict):
        copied = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidMessage(
                    "Keys in %s must be str, not %s." % (where, type(key).__name__)
                )
            copied[key] = _copy_value(item, "%s[%r]" % (where, key))
        return copied
    if isinstance(value, (list, tuple)):
        return [_copy_value(item, "%s[]" % where) for item in value]
    raise InvalidMessage(
        "%s holds a %s; messages may hold only dict, list, str, bytes, int, "
        "float, bool and None." % (where, type(value).__name__)
    )


def clone_message(message):
    """
    Return a copy of message, a copy_message() result: its values were
    checked then, so this only copies the dicts and lists (a group's members
    each get their own copy, which receivers may change).
    """
    return _clone(message)


def _clone(value):
    kind = type(value)
    if kind is dict:
        return {key: _clone(item) for key, item in value.items()}
    if kind is list:
        return [_clone(item) for item in value]
    return value


#: Discarded channels a layer remembers at most (see discard_channel()).
MAX_DISCARDED = 100_000


class DiscardedChannels:
    """
    The channels discard_channel() forgot, each remembered for expiry
    seconds, at most limit of them (the oldest go first). Not thread-safe:
    the layer's lock guards it.
    """

    def __init__(self, expiry, limit=MAX_DISCARDED):
        self.expiry = expiry
        self.limit = limit
        self._until = collections.OrderedDict()

    def add(self, channel):
        now = time.monotonic()
        until = self._until
        until.pop(channel, None)
        while until and (len(until) >= self.limit or next(iter(until.values())) <= now):
            until.popitem(last=False)
        until[channel] = now + self.expiry

    def __contains__(self, channel):
        until = self._until.get(channel)
        return until is not None and until > time.monotonic()

    def __len__(self):
        return len(self._until)

    def clear(self):
        self._until.clear()


def discard_waiter(waiters, waiter):
    """
    Remove waiter from the queue of each of its channels in waiters (a dict
    of channel name to deque of waiters), dropping the queues left empty.
    """
    for channel in waiter.channels:
        queue = waiters.get(channel)
        if queue is not None:
            try:
                queue.remove(waiter)
            except ValueError:
                pass
            if not queue:
                del waiters[channel]


class BaseChannelLayer:
    """
    Base class for channel layer backends.

    Options (the OPTIONS of a CHANNEL_LAYERS entry) common to all backends:

    - expiry: seconds a message waits for a receiver before it is dropped.
    - capacity: default maximum number of queued messages per channel.
    - channel_capacity: {pattern: capacity}; a pattern is a glob string
      ("http.response.*!*") or a compiled regular expression.
    - group_expiry: seconds a group membership lasts unless renewed.
    """

    #: Optional capabilities, checked by callers that need them.
    extensions = []

    def __init__(
        self,
        location=None,
        expiry=60,
        capacity=100,
        channel_capacity=None,
        group_expiry=86400,
    ):
        self.location = location
        self.expiry = expiry
        self.capacity = capacity
        self.group_expiry = group_expiry
        self.channel_capacity = [
            (self._compile_pattern(pattern), value)
            for pattern, value in (channel_capacity or {}).items()
        ]
        self._capacity_cache = {}
        # Identifies this layer instance in process-specific channel names.
        self.client_prefix = secrets.token_hex(6)

    @staticmethod
    def _compile_pattern(pattern):
        if isinstance(pattern, re.Pattern):
            return pattern
        return re.compile(fnmatch.translate(pattern))

    def get_capacity(self, channel):
        """Return the capacity of channel: its first matching pattern's."""
        try:
            return self._capacity_cache[channel]
        except KeyError:
            pass
        capacity = self.capacity
        for pattern, value in self.channel_capacity:
            if pattern.match(channel):
                capacity = value
                break
        if len(self._capacity_cache) < 10000 and not is_short_lived(channel):
            self._capacity_cache[channel] = capacity
        return capacity

    def has_extension(self, name):
        return name in self.extensions

    def require_extension(self, name):
        """Raise NotImplementedError unless the backend declares name."""
        if name not in self.extensions:
            raise NotImplementedError(
                "%s does not support the %r extension (it declares %s)."
                % (type(self).__name__, name, self.extensions)
            )

    # Validation shared by the backends.

    validate_channel_name = staticmethod(validate_channel_name)

    def validate_owner(self, channel):
        """
        Raise ChannelNotOwned if channel is a process-specific channel that
        new_channel() of another layer instance made: "name.<client
        prefix>!..." with a client prefix not this layer's. Prefixes a caller
        chose ("name!...") are the caller's to read.
        """
        bang = channel.find("!")
        start = bang - CLIENT_PREFIX_LENGTH
        if start < 1 or channel[start - 1] != ".":
            return
        owner = channel[start:bang]
        if owner != self.client_prefix and _HEX.issuperset(owner):
            raise ChannelNotOwned(
                "Channel %r belongs to the layer instance with client prefix %r; "
                "only its owner may receive from it (this layer's is %r)."
                % (channel, owner, self.client_prefix)
            )

    validate_group_name = staticmethod(validate_group_name)
    copy_message = staticmethod(copy_message)

    # The contract.

    async def send(self, channel, message):
        """Put message on channel; raise ChannelFull when it is at capacity."""
        raise NotImplementedError(
            "subclasses of BaseChannelLayer must provide a send() method"
        )

    async def send_later(self, channel, message, delay):
        """
        Put message on channel after delay seconds ("delay" extension). The
        capacity check happens on delivery; a message that finds the channel
        full is retried shortly after, never dropped.
        """
        raise NotImplementedError(
            "subclasses of BaseChannelLayer must provide a send_later() method "
            "to support the 'delay' extension"
        )

    async def receive(self, channel):
        """Wait for the next message on channel and return it."""
        raise NotImplementedError(
            "subclasses of BaseChannelLayer must provide a receive() method"
        )

    async def receive_any(self, channels):
        """
        Wait for the next message on any of channels and return
        (channel, message). Exactly one message is taken: of the first
        channel, in the order given, that has one waiting.
        """
        if len(channels) == 1:
            return channels[0], await self.receive(channels[0])
        raise NotImplementedError(
            "subclasses of BaseChannelLayer must provide a receive_any() method "
            "to receive from several channels"
        )

    def can_receive_sync(self, channels):
        """
        Return whether receive_any_sync(channels, timeout) waits in the
        calling thread on a blocking receive of the layer's own, with no
        event loop of its own per call: then a worker's threads take their
        next message with it, and reply from the same thread.
        """
        return False

    async def ack(self, channel, message):
        """
        Acknowledge a message received from channel once its consumer has
        finished. Backends that redeliver messages of dead consumers
        (at-least-once channels) forget the message only now; for
        at-most-once channels this does nothing.
        """

    async def new_channel(self, prefix="specific"):
        """
        Return a new channel name that no other caller gets. See
        django_fork.channels.names.new_channel_name() for the forms of prefix.
        """
        return new_channel_name(prefix, self.client_prefix)

    async def discard_channel(self, channel):
        """
        Forget channel, a process-specific channel of this process that
        nothing will receive from again (a closed socket's reply channel):
        drop the messages waiting on it, and those that arrive for it within
        the layer's expiry (a broadcast before the socket left its groups).
        By default this does nothing, and they expire.
        """

    async def group_add(self, group, channel):
        """Add channel to group (renewing its membership expiry)."""
        raise NotImplementedError(
            "subclasses of BaseChannelLayer must provide a group_add() method"
        )

    async def group_discard(self, group, channel):
        """Remove channel from group; do nothing if it is not a member."""
        raise NotImplementedError(
            "subclasses of BaseChannelLayer must provide a group_discard() method"
        )

    async def group_send(self, group, message):
        """Send message to every member of group; full members are skipped."""
        raise NotImplementedError(
            "subclasses of BaseChannelLayer must provide a group_send() method"
        )

    async def flush(self):
        """Drop every message and group membership of this layer."""
        raise NotImplementedError(
            "subclasses of BaseChannelLayer must provide a flush() method"
        )

    async def stats(self, channels=None):
        """
        Return the load of channels (all known ones when None) as
        {channel: {"depth": ..., ...}}. See the "stats" extension.
        """
        raise NotImplementedError(
            "subclasses of BaseChannelLayer must provide a stats() method"
        )

    async def peek(self, channel, limit=None):
        """
        Return copies of the messages waiting on channel, oldest first (at
        most limit of them), without taking any: they stay queued for
        receive(). Messages already handed to a waiting receiver or expired
        are not included. Optional: backends that provide it declare the
        "peek" extension. Test utilities use it; consumers shouldn't.
        """
        raise NotImplementedError(
            "subclasses of BaseChannelLayer that declare the 'peek' extension "
            "must provide a peek() method"
        )

    async def store_set(self, key, value, timeout):
        """
        Keep value (a dict of message values) under key for timeout seconds
        ("store" extension).
        """
        raise NotImplementedError(
            "subclasses of BaseChannelLayer that declare the 'store' extension "
            "must provide a store_set() method"
        )

    async def store_add(self, key, value, timeout):
        """
        Keep value under key for timeout seconds unless key holds a value;
        return whether it was kept ("store" extension).
        """
        raise NotImplementedError(
            "subclasses of BaseChannelLayer that declare the 'store' extension "
            "must provide a store_add() method"
        )

    async def store_swap(self, key, value, timeout):
        """
        Keep value under key for timeout seconds and return the value it
        replaced, or None ("store" extension).
        """
        raise NotImplementedError(
            "subclasses of BaseChannelLayer that declare the 'store' extension "
            "must provide a store_swap() method"
        )

    async def store_get(self, key):
        """Return the value kept under key, or None ("store" extension)."""
        raise NotImplementedError(
            "subclasses of BaseChannelLayer that declare the 'store' extension "
            "must provide a store_get() method"
        )

    async def close(self):
        """Release connections and background tasks held by the layer."""

    # Sync twins, for code outside an event loop (views, management
    # commands). Backends may override them with direct implementations.

    def send_sync(self, channel, message):
        return async_to_sync(self.send)(channel, message)

    def send_later_sync(self, channel, message, delay):
        return async_to_sync(self.send_later)(channel, message, delay)

    def receive_sync(self, channel):
        return async_to_sync(self.receive)(channel)

    def receive_any_sync(self, channels):
        return async_to_sync(self.receive_any)(channels)

    def ack_sync(self, channel, message):
        return async_to_sync(self.ack)(channel, message)

    def new_channel_sync(self, prefix="specific"):
        return async_to_sync(self.new_channel)(prefix)

    def discard_channel_sync(self, channel):
        return async_to_sync(self.discard_channel)(channel)

    def group_add_sync(self, group, channel):
        return async_to_sync(self.group_add)(group, channel)

    def group_discard_sync(self, group, channel):
        return async_to_sync(self.group_discard)(group, channel)

    def group_send_sync(self, group, message):
        return async_to_sync(self.group_send)(group, message)

    def flush_sync(self):
        return async_to_sync(self.flush)()

    def stats_sync(self, channels=None):
        return async_to_sync(self.stats)(channels)

    def peek_sync(self, channel, limit=None):
        return async_to_sync(self.peek)(channel, limit)

    def store_set_sync(self, key, value, timeout):
        return async_to_sync(self.store_set)(key, value, timeout)

    def store_add_sync(self, key, value, timeout):
        return async_to_sync(self.store_add)(key, value, timeout)

    def store_swap_sync(self, key, value, timeout):
        return async_to_sync(self.store_swap)(key, value, timeout)

    def store_get_sync(self, key):
        return async_to_sync(self.store_get)(key)

    def close_sync(self):
        return async_to_sync(self.close)()
