"""
Connections to Redis shards.

A Shard is one Redis server: its address, its sync client and its health. A
Link is the connections of one event loop to one shard. Hot-path commands go
straight to redis-py Connections (send_command, read_response): the client's
per-command machinery (pool, retries, instrumentation) would cost a quarter
of a round trip. Replies are RESP2, unparsed.
"""

import asyncio
import collections
import inspect
import logging
import socket
import threading
import time
import urllib.parse

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from .sentinel import SentinelLocation

logger = logging.getLogger("django_fork.channels.layers")

CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


# Find a dead peer of an idle or blocked connection within about 11 seconds.
KEEPALIVE = {
    option: value
    for option, value in [
        (getattr(socket, "TCP_KEEPIDLE", None), 5),
        (getattr(socket, "TCP_KEEPINTVL", None), 2),
        (getattr(socket, "TCP_KEEPCNT", None), 3),
    ]
    if option is not None
}


def _no_setinfo(connection_class):
    """
    Return the connection options that turn off the CLIENT SETINFO round
    trips on connect: driver_info since redis-py 6, lib_name/lib_version
    before (deprecated since). redis-py 8.1 declares driver_info on
    AbstractConnection; Connection.__init__ only passes **kwargs on.
    """
    for cls in connection_class.__mro__:
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters
        if "driver_info" in parameters:
            return {"driver_info": None}
        if "lib_name" in parameters:
            return {"lib_name": None, "lib_version": None}
    return {}


NO_SETINFO = _no_setinfo(redis.asyncio.Connection)


#: Idle command connections a Link keeps open.
MAX_IDLE = 32


class Link:
    """
    The connections of one event loop to one shard. Commands go straight
    to a redis-py Connection (send_command, read_response): the client's
    per-command machinery (pool, retries, instrumentation) would cost a
    quarter of a round trip. Replies are RESP2, unparsed.

    At most the layer's max_connections connections run commands at once;
    a command beyond them waits, first come first served, for one to be
    free (within the command's socket_timeout, as LoopState.command() times
    it): a burst of a thousand sends must not open a thousand connections,
    which costs Redis more than the sends. The pumps' blocking connections
    are their own, one per pump, and not counted.
    """

    def __init__(self, shard):
        self.shard = shard
        self.factory = shard.connection_pool()
        self.idle = []
        self.opened = set()
        #: Command connections open (idle or running a command), and the
        #: commands waiting for one.
        self.size = 0
        self.max_size = shard.layer.max_connections
        self.waiting = collections.deque()
        self._client = None

    @property
    def client(self):
        """A redis-py client, for the commands off the hot path."""
        if self._client is None:
            self._client = redis.asyncio.Redis(connection_pool=self.factory)
        return self._client

    def new_connection(self):
        connection = self.factory.make_connection()
        self.opened.add(connection)
        return connection

    async def call(self, *args):
        return (await self.pipeline(args))[0]

    async def _acquire(self):
        """Return (a command connection, whether it was used before)."""
        if self.idle:
            return self.idle.pop(), True
        if self.size < self.max_size:
            self.size += 1
            return self.new_connection(), False
        waiter = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Handed a connection as this command was cancelled.
                self._release(waiter.result()[0])
            else:
                self.waiting.remove(waiter)
            raise

    def _release(self, connection):
        """Hand connection to the next waiting command, or keep it idle."""
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result((connection, True))
                return None
        if len(self.idle) < MAX_IDLE:
            self.idle.append(connection)
            return None
        self.size -= 1
        self.opened.discard(connection)
        return connection

    async def pipeline(self, *commands):
        """Run commands in one round trip; return their replies."""
        connection, reused = await self._acquire()
        try:
            try:
                return await self._run(connection, commands)
            except RedisConnectionError:
                if not reused or connection.is_connected:
                    raise
                # Most likely an idle connection from before a Redis
                # restart, which never saw the commands: send them once more
                # on a new connection.
                return await self._run(connection, commands)
        finally:
            # redis-py disconnects a connection whose reply may still be
            # coming (an error, a cancellation); it reconnects when used.
            surplus = self._release(connection)
            if surplus is not None:
                await surplus.disconnect()

    @staticmethod
    async def _run(connection, commands):
        if not connection.is_connected:
            # connect(), not the implicit connect of a first command, which
            # skips the sentinels' lookup of a Sentinel-managed connection.
            await connection.connect()
        if len(commands) == 1:
            await connection.send_command(*commands[0])
            return [await connection.read_response()]
        await connection.send_packed_command(connection.pack_commands(commands))
        try:
            return [await connection.read_response() for _ in commands]
        except ResponseError:
            # The replies after an error reply are still coming.
            await connection.disconnect()
            raise

    async def script(self, script, args):
        return await async_script_on(self.call, script, args)

    async def aclose(self):
        for connection in list(self.opened):
            await connection.disconnect()
        self.opened.clear()
        self.idle.clear()
        self.size = 0
        if self._client is not None:
            await self._client.aclose()
        sentinels = getattr(self.factory, "sentinel_manager", None)
        if sentinels is not None:
            await sentinels.aclose()


def script_on(call, script, args):
    """Run script with call(*command), loading it first if Redis lost it."""
    try:
        return call("EVALSHA", script.sha, 0, *args)
    except NoScriptError:
        call("SCRIPT", "LOAD", script.text)
        return call("EVALSHA", script.sha, 0, *args)


async def async_script_on(call, script, args):
    """script_on() with an async call(*command)."""
    try:
        return await call("EVALSHA", script.sha, 0, *args)
    except NoScriptError:
        # Redis restarted (or flushed its scripts) since the last load.
        await call("SCRIPT", "LOAD", script.text)
        return await call("EVALSHA", script.sha, 0, *args)


def run_script_sync(client, script, args):
    """Run script with a redis-py sync client."""
    return script_on(client.execute_command, script, args)


def shard_name(url):
    """Return a shard's name on the hash ring: host:port/db, no credentials."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    if parts.scheme == "unix":
        db = query.get("db", ["0"])[0]
        return "unix:%s/%s" % (parts.path, db)
    db = parts.path.lstrip("/") or query.get("db", ["0"])[0]
    return "%s:%s/%s" % (parts.hostname or "localhost", parts.port or 6379, db)


def parse_location(entry):
    """
    Return (shard name, location) for a LOCATION entry: a Redis URL (the
    location is the URL), or a Sentinel URL or dict (a SentinelLocation).
    """
    if isinstance(entry, dict):
        location = SentinelLocation(**entry)
        return location.name, location
    if not isinstance(entry, str):
        raise ValueError("A LOCATION entry is a URL or a dict, not %r." % (entry,))
    if entry.startswith("sentinel://"):
        location = SentinelLocation.from_url(entry)
        return location.name, location
    return shard_name(entry), entry


class Shard:
    """
    One Redis server (or Sentinel service): its address, its sync client
    and its health.
    """

    def __init__(self, name, location, layer):
        self.name = name
        # A URL, or a SentinelLocation.
        self.location = location
        self.layer = layer
        self._sync = None
        self._lock = threading.Lock()
        # Each thread's connection for sync_call(), and all of them.
        self._local = threading.local()
        self._thread_connections = set()
        # Redis server time minus local time, in ms (measured by pumps, and
        # by the first send of a large message).
        self.clock_offset = 0.0
        self.clock_measured = False
        self.down_since = None
        self._last_report = 0.0

    def server_ms(self):
        return time.time() * 1000 + self.clock_offset

    def set_clock(self, before, reply, after):
        """
        Set clock_offset from the reply to TIME and the local times in ms
        before and after it.
        """
        seconds, micros = reply
        self.clock_offset = (
            int(seconds) * 1000 + int(micros) / 1000 - (before + after) / 2
        )
        self.clock_measured = True

    def client_kwargs(self, socket_timeout, retries):
        return {
            # RESP2 everywhere: the replies read unparsed have one shape.
            "protocol": 2,
            "socket_connect_timeout": self.layer.connect_timeout,
            "socket_timeout": socket_timeout,
            "socket_keepalive": True,
            "socket_keepalive_options": KEEPALIVE,
            "retry_on_error": [RedisConnectionError],
            **NO_SETINFO,
            **self.layer.connection_kwargs,
            "retry": retries,
        }

    def sync_client(self):
        if self._sync is None:
            with self._lock:
                if self._sync is None:
                    kwargs = self.client_kwargs(
                        self.layer.socket_timeout, Retry(NoBackoff(), 1)
                    )
                    if isinstance(self.location, SentinelLocation):
                        self._sync = self.location.sync_client(**kwargs)
                    else:
                        self._sync = redis.Redis.from_url(self.location, **kwargs)
        return self._sync

    def connection_pool(self):
        # No socket_timeout: redis-py would arm a timer around every read
        # and write, which costs a tenth of a round trip. Commands are timed
        # by LoopState.command() instead, blocking calls by TCP keepalive.
        kwargs = self.client_kwargs(None, AsyncRetry(NoBackoff(), 1))
        if isinstance(self.location, SentinelLocation):
            return self.location.connection_pool(**kwargs)
        return redis.asyncio.ConnectionPool.from_url(self.location, **kwargs)

    def sync_call(self, *args):
        return self.sync_pipeline(args)[0]

    def sync_pipeline(self, *commands):
        """
        Run commands in one round trip on this thread's own connection (the
        sync client's per-command machinery, pool and retries, costs about
        as much as the round trip). Replies are RESP2, unparsed.
        """
        connection = getattr(self._local, "connection", None)
        reused = connection is not None
        if connection is None:
            connection = self.sync_client().connection_pool.make_connection()
            self._local.connection = connection
            with self._lock:
                self._thread_connections.add(connection)
        try:
            return self._run_sync(connection, commands)
        except RedisConnectionError:
            if not reused:
                raise
            # Most likely a connection from before a Redis restart, which
            # never saw the commands: send them once more, reconnected.
            return self._run_sync(connection, commands)

    @staticmethod
    def _run_sync(connection, commands):
        if not connection.is_connected:
            # As in Link._run().
            connection.connect()
        if len(commands) == 1:
            connection.send_command(*commands[0])
            return [connection.read_response()]
        connection.send_packed_command(connection.pack_commands(commands))
        try:
            return [connection.read_response() for _ in commands]
        except ResponseError:
            # The replies after an error reply are still coming.
            connection.disconnect()
            raise

    def close_sync(self):
        client, self._sync = self._sync, None
        with self._lock:
            connections, self._thread_connections = self._thread_connections, set()
            self._local = threading.local()
        for connection in connections:
            connection.disconnect()
        if client is not None:
            client.close()

    def failed(self, exc, what):
        """Log a connection failure, once and then every 30 seconds."""
        now = time.monotonic()
        with self._lock:
            first = self.down_since is None
            if first:
                self.down_since = now
            report = first or now - self._last_report >= 30
            if report:
                self._last_report = now
        if report:
            logger.warning(
                "Redis shard %s is unreachable (%s: %s); %s.",
                self.name,
                type(exc).__name__,
                exc,
                what,
                extra={"shard": self.name},
            )

    def succeeded(self):
        if self.down_since is None:
            return
        with self._lock:
            since, self.down_since = self.down_since, None
        if since is not None:
            logger.warning(
                "Redis shard %s is reachable again after %.1f s; resumed.",
                self.name,
                time.monotonic() - since,
                extra={"shard": self.name},
            )


async def timed(awaitable):
    """Return (local ms before, the result, local ms after)."""
    before = time.time() * 1000
    result = await awaitable
    return before, result, time.time() * 1000


def server_version(info):
    """Return the (major, minor) version in an INFO reply, (0, 0) if none."""
    if isinstance(info, bytes):
        info = info.decode("latin1")
    for line in str(info).splitlines():
        if line.startswith("redis_version:"):
            parts = line.split(":", 1)[1].strip().split(".")
            try:
                return int(parts[0]), int(parts[1])
            except (IndexError, ValueError):
                break
    return (0, 0)
