"""
The layer in one event loop: its links to the shards, its pumps, its timers.

Redis connections belong to the event loop that opened them, so every
running loop gets its own LoopState; the sync twins use redis-py's
thread-safe sync client.
"""

import asyncio

from redis.exceptions import TimeoutError as RedisTimeoutError

from .connection import Link
from .pump import Pump

#: Seconds between checks for commands Redis did not answer in time.
WATCH_INTERVAL = 0.25


def _uncancel(task):
    """
    Withdraw one cancellation of task (the watchdog's); return whether
    another is still pending (Python 3.11+: one from outside, such as
    asyncio.run() cancelling the tasks left at its end, which must not be
    swallowed).
    """
    uncancel = getattr(task, "uncancel", None)
    return uncancel is not None and uncancel() > 0


class LoopState:
    """The clients and pumps of the layer in one event loop."""

    def __init__(self, layer, loop):
        self.layer = layer
        self.loop = loop
        self.links = {}
        self.pumps = {}
        self.closed = False
        self.guard = None
        self.flush_scheduled = False
        self.sweep_scheduled = False
        # task -> loop time by which its command must be answered.
        self.watched = {}
        self.expired = set()
        self.watchdog = None
        # Background tasks and timers, stopped by aclose().
        self.tasks = set()
        self.timers = set()
        # Puts delayed messages on their channels when they are due.
        self.releaser = None
        self.release_event = asyncio.Event()

    async def start(self):
        # The loop runner (asyncio.run, uvicorn) closes async generators
        # before it closes the loop: that is when connections opened in a
        # loop that ends without close() are released.
        self.guard = self._guard()
        await self.guard.__anext__()

    async def _guard(self):
        try:
            yield
        finally:
            self.guard = None
            await self.aclose()

    def link(self, shard):
        link = self.links.get(shard.name)
        if link is None:
            link = self.links[shard.name] = Link(shard)
        return link

    def spawn(self, coroutine):
        """Run coroutine in a task that aclose() cancels if still running."""
        if self.closed:
            coroutine.close()
            return None
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def later(self, delay, make_coroutine):
        """Spawn make_coroutine() after delay seconds, unless closed."""

        def fire():
            self.timers.discard(handle)
            self.spawn(make_coroutine())

        handle = self.loop.call_later(delay, fire)
        self.timers.add(handle)

    async def command(self, shard, operation):
        """
        Return await operation(link to shard), raising RedisTimeoutError if
        Redis does not answer within the layer's socket_timeout.
        """
        task = asyncio.current_task()
        self.watched[task] = self.loop.time() + self.layer.socket_timeout
        if self.watchdog is None:
            self.watchdog = self.loop.call_later(WATCH_INTERVAL, self._watch)
        timed_out = False
        try:
            return await operation(self.link(shard))
        except asyncio.CancelledError:
            if task not in self.expired:
                raise
            timed_out = True
            if _uncancel(task):
                # Cancelled from outside as well: that cancellation wins.
                raise
            raise RedisTimeoutError(
                "Redis shard %s did not answer within %s s."
                % (shard.name, self.layer.socket_timeout)
            ) from None
        finally:
            del self.watched[task]
            if task in self.expired:
                self.expired.discard(task)
                if not timed_out:
                    # The answer came just as the watchdog cancelled the
                    # task: take the cancellation here, not at the caller's
                    # next await.
                    try:
                        await asyncio.sleep(0)
                    except asyncio.CancelledError:
                        if _uncancel(task):
                            raise

    def _watch(self):
        """Cancel commands that outlived socket_timeout (every 0.25 s)."""
        self.watchdog = None
        now = self.loop.time()
        for task, deadline in list(self.watched.items()):
            if deadline <= now and task not in self.expired:
                self.expired.add(task)
                task.cancel()
        if self.watched and not self.closed:
            self.watchdog = self.loop.call_later(WATCH_INTERVAL, self._watch)

    def release_delayed(self):
        """Make sure delayed messages are released from this loop too."""
        if self.releaser is None and not self.closed:
            self.releaser = self.spawn(self.layer._release(self))
        self.release_event.set()

    def pump(self, shard, family):
        pump = self.pumps.get((shard.name, family))
        if pump is None:
            # Receiving processes release delayed messages, so that none
            # waits for its sender's process.
            self.release_delayed()
            pump = self.pumps[shard.name, family] = Pump(
                self, shard, family, len(self.pumps)
            )
        return pump

    async def aclose(self):
        if self.closed:
            return
        self.closed = True
        self.layer._forget_state(self)
        for handle in [self.watchdog, *self.timers]:
            if handle is not None:
                handle.cancel()
        self.timers.clear()
        current = asyncio.current_task()
        tasks = [task for task in self.tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(pump.aclose() for pump in self.pumps.values()))
        try:
            await asyncio.wait_for(self.layer._flush_async(self), 1)
        except Exception:
            # Stats only: not worth holding up a shutdown.
            pass
        for link in self.links.values():
            try:
                await link.aclose()
            except Exception:  # pragma: no cover
                pass
        guard, self.guard = self.guard, None
        if guard is not None:
            await guard.aclose()
