"""
A channel layer that keeps everything in this process's memory.

It serves one process: runstack (interface and workers as threads of one
process), tests, and development. It is safe to use from several threads and
event loops at once, so a sync view running in a worker thread can send with
send_sync() while the interface's event loop waits in receive().
"""

import _thread
import asyncio
import heapq
import itertools
import threading
import time
from asyncio import events
from collections import OrderedDict, deque

from django_fork.channels.exceptions import ChannelFull
from django_fork.channels.layers.base import (
    BaseChannelLayer,
    DiscardedChannels,
    clone_message,
    discard_waiter,
)
from django_fork.channels.layers.stats import ChannelCounters
from django_fork.channels.names import is_short_lived, stats_name


class _Waiter:
    """
    A receiver blocked on one or more channels: a thread waiting on a lock
    that wake() releases (one C call, where threading.Event takes a
    Condition and several Python calls each way), or a future of an event
    loop.
    """

    __slots__ = ("channels", "loop", "future", "lock", "result")

    def __init__(self, channels, loop=None):
        self.channels = channels
        self.loop = loop
        self.result = None
        if loop is None:
            self.lock = _thread.allocate_lock()
            self.lock.acquire()
            self.future = None
        else:
            self.lock = None
            self.future = loop.create_future()

    def wait(self, timeout=None):
        """In a thread: wait for wake(); return False after timeout seconds."""
        return self.lock.acquire(True, -1 if timeout is None else timeout)

    def wake(self, channel, message):
        # Called with the layer's lock held: from here on the message belongs
        # to this waiter, which puts it back if it is cancelled meanwhile.
        self.result = (channel, message)
        if self.lock is not None:
            self.lock.release()
        elif events._get_running_loop() is self.loop:
            # A send from the waiter's own loop (the interface of runstack
            # answering itself, a consumer on the worker's loop): no
            # wake-up of the loop through its self-pipe.
            _resolve(self.future)
        else:
            self.loop.call_soon_threadsafe(_resolve, self.future)


def _resolve(future):
    if not future.done():
        future.set_result(None)


def _consumer_id():
    if events._get_running_loop() is None:
        return threading.get_ident()
    task = asyncio.current_task()
    return id(task) if task is not None else threading.get_ident()


class InMemoryChannelLayer(BaseChannelLayer):
    """
    A thread-safe, single-process channel layer.

    Options beyond BaseChannelLayer's:

    - max_stored: how many values the "store" extension keeps at most
      (default 10,000); past it, the oldest written goes first.
    """

    extensions = ["groups", "flush", "stats", "delay", "peek", "store"]

    def __init__(self, location=None, max_stored=10000, **options):
        super().__init__(location=location, **options)
        self.max_stored = max_stored
        self._lock = threading.Lock()
        # key -> (expires_at, value), oldest written first.
        self._stored = OrderedDict()
        # channel -> deque of (expires_at, message)
        self._queues = {}
        # channel -> deque of _Waiter
        self._waiters = {}
        # group -> {channel: expires_at}
        self._groups = {}
        self._counters = {}
        self._discarded = DiscardedChannels(self.expiry)
        # Delayed messages: a heap of (due, n, channel, message), released by
        # one timer thread that runs while the heap is not empty.
        self._delayed = []
        self._delayed_order = itertools.count()
        self._delay_wakeup = threading.Condition(self._lock)
        self._delay_thread = None
        self._next_sweep = time.monotonic() + min(self.expiry, 1.0)
        # Drops expired messages while any are queued, even when nothing is
        # sent (sends sweep too): an abandoned message is freed when it
        # expires, not when traffic next comes.
        self._sweeper = None

    # Internals; all of them run with self._lock held.

    def _counter(self, channel):
        name = stats_name(channel)
        counters = self._counters.get(name)
        if counters is None:
            counters = self._counters[name] = ChannelCounters()
        return counters

    def _put(self, channel, message, now):
        """Hand message to a waiting receiver or queue it."""
        if self._discarded and channel in self._discarded:
            return
        waiters = self._waiters.get(channel)
        while waiters:
            waiter = waiters.popleft()
            if waiter.result is None and not (
                waiter.future is not None and waiter.future.done()
            ):
                self._forget_waiter(waiter)
                self._counter(channel).received(now)
                waiter.wake(channel, message)
                return
        queue = self._queues.get(channel)
        if queue is None:
            queue = self._queues[channel] = deque()
        elif len(queue) >= self.get_capacity(channel):
            self._drop_expired(channel, queue, now)
            if len(queue) >= self.get_capacity(channel):
                self._counter(channel).full(now)
                raise ChannelFull(channel)
            # Dropping the expired messages may have dropped the queue.
            queue = self._queues.setdefault(channel, queue)
        queue.append((now + self.expiry, message))
        if self._sweeper is None:
            self._sweeper = threading.Thread(
                target=self._sweep_while_queued,
                name="django-fork-inmemory-sweep",
                daemon=True,
            )
            self._sweeper.start()

    def _sweep_while_queued(self):
        while True:
            time.sleep(min(self.expiry, 1.0))
            with self._lock:
                self._sweep(time.monotonic())
                if not self._queues:
                    self._sweeper = None
                    return

    def _take(self, channels, consumer, now):
        """
        Return (channel, message) from the first non-empty channel, in the
        order given (the contract's order of receive_any()).
        """
        for channel in channels:
            # A process's short-lived channels have one receiver: it.
            self._counter(channel).consumer_seen(
                self.client_prefix if is_short_lived(channel) else consumer, now
            )
            queue = self._queues.get(channel)
            while queue:
                expires, message = queue.popleft()
                if expires > now:
                    self._counter(channel).received(now)
                    return channel, message
        return None

    def _drop_expired(self, channel, queue, now):
        while queue and queue[0][0] <= now:
            queue.popleft()
        if not queue and not self._waiters.get(channel):
            self._queues.pop(channel, None)

    def _forget_waiter(self, waiter):
        discard_waiter(self._waiters, waiter)

    def _sweep(self, now):
        """Drop expired messages and memberships, at most once a second."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + min(self.expiry, 1.0)
        for channel, queue in list(self._queues.items()):
            self._drop_expired(channel, queue, now)
        for group, members in list(self._groups.items()):
            for channel, expires in list(members.items()):
                if expires <= now:
                    del members[channel]
            if not members:
                del self._groups[group]
        waiting = {stats_name(channel) for channel in self._queues}
        for name, counters in list(self._counters.items()):
            if counters.idle(now) and name not in waiting:
                del self._counters[name]

    def _register(self, waiter):
        for channel in waiter.channels:
            self._waiters.setdefault(channel, deque()).append(waiter)

    def _requeue(self, waiter):
        """Put back a message handed to a waiter that was cancelled."""
        channel, message = waiter.result
        queue = self._queues.setdefault(channel, deque())
        queue.appendleft((time.monotonic() + self.expiry, message))

    # The contract.

    async def send(self, channel, message):
        self.send_sync(channel, message)

    def send_sync(self, channel, message):
        self.validate_channel_name(channel)
        message = self.copy_message(message)
        now = time.monotonic()
        with self._lock:
            self._sweep(now)
            self._put(channel, message, now)
            self._counter(channel).sent(now)

    async def send_later(self, channel, message, delay):
        self.send_later_sync(channel, message, delay)

    def send_later_sync(self, channel, message, delay):
        self.validate_channel_name(channel)
        message = self.copy_message(message)
        due = time.monotonic() + max(0.0, delay)
        with self._lock:
            heapq.heappush(
                self._delayed, (due, next(self._delayed_order), channel, message)
            )
            if self._delay_thread is None:
                self._delay_thread = threading.Thread(
                    target=self._release_delayed,
                    name="django-fork-inmemory-delay",
                    daemon=True,
                )
                self._delay_thread.start()
            self._delay_wakeup.notify()

    def _release_delayed(self):
        with self._lock:
            while self._delayed:
                now = time.monotonic()
                due, order, channel, message = self._delayed[0]
                if due > now:
                    self._delay_wakeup.wait(due - now)
                    continue
                heapq.heappop(self._delayed)
                try:
                    self._put(channel, message, now)
                    self._counter(channel).sent(now)
                except ChannelFull:
                    # Delivery is owed: try again shortly.
                    heapq.heappush(self._delayed, (now + 0.05, order, channel, message))
            self._delay_thread = None

    async def receive(self, channel):
        return (await self.receive_any([channel]))[1]

    def receive_sync(self, channel):
        return self.receive_any_sync([channel])[1]

    async def receive_any(self, channels):
        for channel in channels:
            self.validate_channel_name(channel)
            self.validate_owner(channel)
        consumer = _consumer_id()
        with self._lock:
            now = time.monotonic()
            found = self._take(channels, consumer, now)
            if found is not None:
                return found
            waiter = _Waiter(tuple(channels), asyncio.get_running_loop())
            self._register(waiter)
        try:
            await waiter.future
        except BaseException:
            with self._lock:
                if waiter.result is not None:
                    self._requeue(waiter)
                else:
                    self._forget_waiter(waiter)
            raise
        return waiter.result

    def receive_any_sync(self, channels, timeout=None):
        for channel in channels:
            self.validate_channel_name(channel)
            self.validate_owner(channel)
        consumer = _consumer_id()
        with self._lock:
            found = self._take(channels, consumer, time.monotonic())
            if found is not None:
                return found
            waiter = _Waiter(tuple(channels))
            self._register(waiter)
        if not waiter.wait(timeout):
            with self._lock:
                if waiter.result is None:
                    self._forget_waiter(waiter)
                    raise TimeoutError("No message within %s seconds." % timeout)
        return waiter.result

    def can_receive_sync(self, channels):
        return True

    def ack_sync(self, channel, message):
        # Nothing is redelivered: there is nothing to forget (as ack()).
        pass

    async def discard_channel(self, channel):
        self.discard_channel_sync(channel)

    def discard_channel_sync(self, channel):
        self.validate_channel_name(channel)
        with self._lock:
            self._discarded.add(channel)
            self._queues.pop(channel, None)

    async def group_add(self, group, channel):
        self.group_add_sync(group, channel)

    def group_add_sync(self, group, channel):
        self.validate_group_name(group)
        self.validate_channel_name(channel)
        with self._lock:
            members = self._groups.setdefault(group, {})
            members[channel] = time.monotonic() + self.group_expiry

    async def group_discard(self, group, channel):
        self.group_discard_sync(group, channel)

    def group_discard_sync(self, group, channel):
        self.validate_group_name(group)
        self.validate_channel_name(channel)
        with self._lock:
            members = self._groups.get(group)
            if members is not None:
                members.pop(channel, None)
                if not members:
                    del self._groups[group]

    async def group_send(self, group, message):
        self.group_send_sync(group, message)

    def group_send_sync(self, group, message):
        self.validate_group_name(group)
        message = self.copy_message(message)
        now = time.monotonic()
        with self._lock:
            self._sweep(now)
            members = self._groups.get(group, {})
            for channel, expires in list(members.items()):
                if expires <= now:
                    del members[channel]
                    continue
                try:
                    # Each member gets its own copy: receivers may mutate.
                    self._put(channel, clone_message(message), now)
                    self._counter(channel).sent(now)
                except ChannelFull:
                    # At-most-once delivery: a full member misses this one.
                    pass

    async def flush(self):
        self.flush_sync()

    def flush_sync(self):
        with self._lock:
            self._stored.clear()
            self._queues.clear()
            self._groups.clear()
            self._counters.clear()
            self._delayed.clear()
            self._discarded.clear()

    def _store(self, key, value, timeout, add=False):
        """Keep value under key; return the live value it replaced."""
        value = self.copy_message(value)
        now = time.monotonic()
        with self._lock:
            previous = self._stored.pop(key, None)
            if previous is not None and previous[0] <= now:
                previous = None
            if add and previous is not None:
                self._stored[key] = previous
                return previous[1]
            self._stored[key] = (now + timeout, value)
            while len(self._stored) > self.max_stored:
                self._stored.popitem(last=False)
        return None if previous is None else previous[1]

    async def store_set(self, key, value, timeout):
        self._store(key, value, timeout)

    def store_set_sync(self, key, value, timeout):
        self._store(key, value, timeout)

    async def store_add(self, key, value, timeout):
        return self.store_add_sync(key, value, timeout)

    def store_add_sync(self, key, value, timeout):
        return self._store(key, value, timeout, add=True) is None

    async def store_swap(self, key, value, timeout):
        return self.store_swap_sync(key, value, timeout)

    def store_swap_sync(self, key, value, timeout):
        # What it replaced is out of the store: no copy needed.
        return self._store(key, value, timeout)

    async def store_get(self, key):
        return self.store_get_sync(key)

    def store_get_sync(self, key):
        with self._lock:
            entry = self._stored.get(key)
            if entry is None:
                return None
            if entry[0] <= time.monotonic():
                del self._stored[key]
                return None
            # A copy: the caller may change what it got.
            return self.copy_message(entry[1])

    async def peek(self, channel, limit=None):
        return self.peek_sync(channel, limit)

    def peek_sync(self, channel, limit=None):
        self.validate_channel_name(channel)
        now = time.monotonic()
        with self._lock:
            waiting = [
                message
                for expires, message in self._queues.get(channel, ())
                if expires > now
            ]
            if limit is not None:
                waiting = waiting[:limit]
            # Copies, made before a receiver can take (and change) one: a
            # caller that changes what it peeked at mustn't change what a
            # receiver gets later.
            return [self.copy_message(message) for message in waiting]

    async def stats(self, channels=None):
        return self.stats_sync(channels)

    def stats_sync(self, channels=None):
        now = time.monotonic()
        with self._lock:
            self._sweep(now)
            if channels is None:
                names = self._counters.keys() | {
                    stats_name(channel) for channel in self._queues
                }
            else:
                names = list(channels)
            result = {}
            for name in sorted(names):
                if name.endswith(("!", "?")):
                    # A prefix: the channels made from it, together.
                    queues = [
                        queue
                        for channel, queue in self._queues.items()
                        if channel.startswith(name)
                    ]
                else:
                    queues = [self._queues.get(name) or ()]
                depth = sum(len(queue) for queue in queues)
                sent = min((queue[0][0] for queue in queues if queue), default=None)
                oldest = 0.0 if sent is None else max(0.0, now - (sent - self.expiry))
                counters = self._counters.get(stats_name(name)) or ChannelCounters()
                result[name] = counters.as_dict(
                    now,
                    depth=depth,
                    oldest_age=oldest,
                    capacity=self.get_capacity(name),
                )
            return result
