"""
A channel layer on one or more Redis servers.

Rules this module keeps:

- One round trip per send (a Lua script checks capacity and pushes) and one
  per received message (a blocking pop; or one non-blocking pop for all the
  receives waiting when messages pour in). Bookkeeping (stats counters, the
  depth of process-specific channels) is batched and written off the hot
  path within FLUSH_DELAY seconds. Hot-path commands go straight to
  redis-py Connections (see _Link).
- A blocking pop is never cancelled while Redis may be answering it: each
  (event loop, shard) has "pumps", background tasks that own the blocking
  connections and hand what they pop to the waiting receive() calls or, when
  nobody waits any more, to a buffer that the next receive() reads first.
  Cancelling receive() only unregisters its waiter. A pump is stopped by
  pushing a token onto its private wake key, never by cancelling it.
- All process-specific channels "name.<x>!<y>" of one prefix "name.<x>!" are
  one Redis list on the prefix's shard, read by one pump per event loop.
- A connection failure never escapes a blocking receive: the pump logs it,
  retries with backoff, and carries on when Redis is back. Sends fail fast
  with ChannelLayerUnavailable (the interface answers 503).
- Redis connections belong to the event loop that opened them, so every
  running loop gets its own connections and pumps (_LoopState); the sync
  twins use redis-py's thread-safe sync client.

Keys, for a key prefix P (the "prefix" option):

- P:c:<channel>   list of "<sent ms>:<body>", ordinary and single-reader
                  channels.
- P:p:<name!>     list of "<sent ms>:<channel>:<body>", the process-specific
                  channels of one prefix; P:n:<name!> hashes channel -> depth.
- P:q:<channel>   stream of entries {m: <body>} with consumer group
                  "consumers", at-least-once channels.
- P:g:<group>     hash channel -> "<expires ms>:<kind>:<capacity>", the
                  members of a group that live on this shard.
- P:d             zset of delayed messages "<id>:<kind>:<capacity>:<channel>:
                  <body>", scored by when they are due.
- P:s:<name>, P:u:<name>, P:k   stats counters, consumers seen, names seen.
- P:w:<id>        wake keys of pumps.

Times are Redis server time (TIME), so hosts with skewed clocks agree on
expiry. The scripts build key names from the prefix: the layer is for plain
Redis servers (shard by listing several), not Redis Cluster.
"""

import asyncio
import collections
import hashlib
import inspect
import logging
import secrets
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

from django_fork.channels.exceptions import ChannelFull, ChannelLayerUnavailable
from django_fork.channels.layers.base import BaseChannelLayer
from django_fork.channels.layers.serializers import DecodeError, get_serializer
from django_fork.channels.layers.sharding import HashRing
from django_fork.channels.layers.stats import CONSUMER_WINDOW, RATE_WINDOW
from django_fork.channels.names import is_short_lived, new_channel_name, stats_name

__all__ = ["RedisChannelLayer"]

logger = logging.getLogger("django_fork.channels.layers")

#: Seconds a receive's bookkeeping may wait before it is written to Redis.
FLUSH_DELAY = 0.05
#: Seconds stats counters and seen names are kept after the last activity.
STATS_TTL = 3600
#: Seconds a message popped for a receive() that went away waits in this
#: process before it is put back for other consumers.
RETURN_AFTER = 1.0
#: Seconds a process keeps popping its process-specific lists after the last
#: receive() on them.
OWNED_LINGER = 60
#: The same for a single-reader list: long enough for the next receive() of a
#: stream (a body in chunks), short enough that the keys of many finished
#: streams do not lengthen every blocking pop.
SINGLE_READER_LINGER = 0.1
#: Bytes from which a message is sent with plain commands, not the send
#: script: a body passed through Lua costs Redis about 1.5 ms per MiB in
#: copies, the plain commands a round trip more when the channel is full.
LARGE_MESSAGE = 8192
#: After a batch pop that found nothing, try one again only after this many
#: blocking pops that could have left more behind.
BATCH_RETRY = 16
#: Seconds between checks for commands Redis did not answer in time.
WATCH_INTERVAL = 0.25
#: Consumer group of at-least-once streams.
CONSUMER_GROUP = "consumers"

_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)

# Find a dead peer of an idle or blocked connection within about 11 seconds.
_KEEPALIVE = {
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


_NO_SETINFO = _no_setinfo(redis.asyncio.Connection)


# Lua. Every script starts with _LIB; ARGV[1] is always the key prefix.

_LIB = """
local prefix = ARGV[1]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function ms(n)
  return string.format('%.0f', n)
end

-- Stats of a channel (or of a process prefix "name!") are the hash
-- P:s:<name>: totals s (sent), r (received), f (full) and per-second buckets
-- s<b>/r<b> for the second t<b>, b = second % 12.
local function count(name, field, n, now)
  local stats = prefix .. ':s:' .. name
  redis.call('HINCRBY', stats, field, n)
  if field == 'f' then
    if redis.call('PTTL', stats) < 0 then
      redis.call('PEXPIRE', stats, @stats_ttl@)
    end
    return
  end
  local sec = math.floor(now / 1000)
  local b = sec % 12
  if redis.call('HGET', stats, 't' .. b) ~= ms(sec) then
    redis.call('HSET', stats, 't' .. b, ms(sec), 's' .. b, 0, 'r' .. b, 0)
    redis.call('PEXPIRE', stats, @stats_ttl@)
    redis.call('ZADD', prefix .. ':k', now, name)
    redis.call('PEXPIRE', prefix .. ':k', @stats_ttl@)
  end
  redis.call('HINCRBY', stats, field .. b, n)
end

-- Lower the depth counter of a single-reader channel by n.
local function lower(counter, n)
  if redis.call('DECRBY', counter, n) <= 0 then
    redis.call('DEL', counter)
  end
end

-- Drop the expired messages at the head of a list (at most 1000 per call),
-- to make room in a full channel; receivers skip expired messages anyway.
-- In a process-specific list, also lower the depth of their channels (hash
-- depths); in a single-reader list, its depth counter.
local function trim(key, now, expiry, depths, counter)
  for i = 1, 1000 do
    local head = redis.call('LINDEX', key, 0)
    if not head then return end
    local colon = string.find(head, ':', 1, true)
    if tonumber(string.sub(head, 1, colon - 1)) + expiry > now then return end
    redis.call('LPOP', key)
    if depths then
      local channel = string.sub(
        head, colon + 1, string.find(head, ':', colon + 1, true) - 1)
      if redis.call('HINCRBY', depths, channel, -1) <= 0 then
        redis.call('HDEL', depths, channel)
      end
    elseif counter then
      lower(counter, 1)
    end
  end
end

-- Put body on channel; return 1, or 0 when the channel is full. kind is
-- 'c' (list), 'p' (process-specific list) or 'q' (at-least-once stream).
-- With counted false, the caller counts the message in the stats.
--
-- The owner of a process-specific or single-reader channel pops its
-- messages ahead of its receive() calls; their depth (hash P:n:<name!>,
-- counter P:n:<channel?>) counts a message from its send until the owner
-- hands it to a receive() or drops it, so the capacity holds for what the
-- owner keeps in its process too.
local function push(kind, channel, body, capacity, expiry, now, hold, counted)
  local name = channel
  local mark = string.find(channel, '?', 1, true)
  if mark then name = string.sub(channel, 1, mark) end
  if kind == 'p' then
    name = string.sub(channel, 1, string.find(channel, '!', 1, true))
    local key = prefix .. ':p:' .. name
    local depths = prefix .. ':n:' .. name
    if tonumber(redis.call('HGET', depths, channel) or 0) >= capacity then
      trim(key, now, expiry, depths, nil)
      if tonumber(redis.call('HGET', depths, channel) or 0) >= capacity then
        if counted then count(name, 'f', 1, now) end
        return 0
      end
    end
    redis.call('RPUSH', key, ms(now) .. ':' .. channel .. ':' .. body)
    redis.call('HINCRBY', depths, channel, 1)
    redis.call('PEXPIRE', key, expiry)
    redis.call('PEXPIRE', depths, expiry)
  elseif kind == 'q' then
    local key = prefix .. ':q:' .. channel
    local depth = redis.call('XLEN', key)
    if depth > 0 then
      redis.call('XTRIM', key, 'MINID', ms(now - expiry))
      depth = redis.call('XLEN', key)
    end
    if depth >= capacity then
      if counted then count(name, 'f', 1, now) end
      return 0
    end
    if redis.call('EXISTS', key) == 0 then
      redis.call('XGROUP', 'CREATE', key, '@group@', '0', 'MKSTREAM')
    end
    redis.call('XADD', key, '*', 'm', body)
    redis.call('PEXPIRE', key, expiry + hold)
  elseif mark then
    local key = prefix .. ':c:' .. channel
    local counter = prefix .. ':n:' .. channel
    if tonumber(redis.call('GET', counter) or 0) >= capacity then
      trim(key, now, expiry, nil, counter)
      if tonumber(redis.call('GET', counter) or 0) >= capacity then
        if counted then count(name, 'f', 1, now) end
        return 0
      end
    end
    redis.call('RPUSH', key, ms(now) .. ':' .. body)
    redis.call('INCR', counter)
    redis.call('PEXPIRE', key, expiry)
    redis.call('PEXPIRE', counter, expiry)
  else
    local key = prefix .. ':c:' .. channel
    if redis.call('LLEN', key) >= capacity then
      trim(key, now, expiry, nil, nil)
      if redis.call('LLEN', key) >= capacity then
        if counted then count(name, 'f', 1, now) end
        return 0
      end
    end
    redis.call('RPUSH', key, ms(now) .. ':' .. body)
    redis.call('PEXPIRE', key, expiry)
  end
  if counted then count(name, 's', 1, now) end
  return 1
end
"""

# ARGV: prefix, kind, channel, body, capacity, expiry ms, hold ms, '1' to
# count the message in the stats here ('0': an event loop of the sender
# counts it soon, in a batch, off the hot path).
_SEND = """
return push(ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]),
            now_ms(), tonumber(ARGV[7]), ARGV[8] == '1')
"""

# ARGV: prefix, group, body, expiry ms, hold ms. Returns how many got it.
_GROUP_SEND = """
local key = prefix .. ':g:' .. ARGV[2]
local now = now_ms()
local members = redis.call('HGETALL', key)
local sent = 0
for i = 1, #members, 2 do
  local channel, info = members[i], members[i + 1]
  local a = string.find(info, ':', 1, true)
  local b = string.find(info, ':', a + 1, true)
  if tonumber(string.sub(info, 1, a - 1)) <= now then
    redis.call('HDEL', key, channel)
  else
    sent = sent + push(string.sub(info, a + 1, b - 1), channel, ARGV[3],
                       tonumber(string.sub(info, b + 1)), tonumber(ARGV[4]),
                       now, tonumber(ARGV[5]), true)
  end
end
return sent
"""

# ARGV: prefix, group, channel, kind, capacity, group expiry ms.
_GROUP_ADD = """
local key = prefix .. ':g:' .. ARGV[2]
local expires = now_ms() + tonumber(ARGV[6])
redis.call('HSET', key, ARGV[3], ms(expires) .. ':' .. ARGV[4] .. ':' .. ARGV[5])
redis.call('PEXPIRE', key, ARGV[6])
return 1
"""

# ARGV: prefix, then records: 's' / 'r' / 'f', name, n (n sent, received,
# refused as full) | 'd', name!, channel, n (n fewer waiting on a
# process-specific channel) | 'e', channel, n (n fewer waiting on a
# single-reader channel) | 'c', name, consumer (consumer seen).
_BOOK = """
local now = now_ms()
local i = 2
while i <= #ARGV do
  local tag = ARGV[i]
  if tag == 's' or tag == 'r' or tag == 'f' then
    count(ARGV[i + 1], tag, tonumber(ARGV[i + 2]), now)
    i = i + 3
  elseif tag == 'd' then
    local depths = prefix .. ':n:' .. ARGV[i + 1]
    if redis.call('HINCRBY', depths, ARGV[i + 2], -tonumber(ARGV[i + 3])) <= 0
    then
      redis.call('HDEL', depths, ARGV[i + 2])
    end
    i = i + 4
  elseif tag == 'e' then
    lower(prefix .. ':n:' .. ARGV[i + 1], tonumber(ARGV[i + 2]))
    i = i + 3
  else
    local seen = prefix .. ':u:' .. ARGV[i + 1]
    redis.call('ZADD', seen, now, ARGV[i + 2])
    redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - @window@)
    redis.call('PEXPIRE', seen, @window@)
    i = i + 3
  end
end
return 1
"""

# ARGV: prefix, '1' to add every name seen lately, then channel names.
# Returns now, then per name: name, depth, sent ms of the oldest message (-1
# for none), the stats hash, consumers seen.
_STATS = """
local now = now_ms()
local names = {}
for i = 3, #ARGV do names[#names + 1] = ARGV[i] end
if ARGV[2] == '1' then
  local known = prefix .. ':k'
  redis.call('ZREMRANGEBYSCORE', known, '-inf', now - @ttl@)
  for _, name in ipairs(redis.call('ZRANGE', known, 0, -1)) do
    names[#names + 1] = name
  end
end
local function head_sent(key)
  local head = redis.call('LINDEX', key, 0)
  if not head then return -1 end
  return tonumber(string.sub(head, 1, string.find(head, ':', 1, true) - 1))
end
local out = {now}
for _, channel in ipairs(names) do
  local name = channel
  local depth = 0
  local oldest = -1
  local bang = string.find(channel, '!', 1, true)
  local mark = string.find(channel, '?', 1, true)
  if mark and not bang then
    -- Single-reader channels count under their prefix "name?".
    name = string.sub(channel, 1, mark)
    local key = prefix .. ':c:' .. channel
    depth = redis.call('LLEN', key)
    oldest = head_sent(key)
  elseif bang then
    name = string.sub(channel, 1, bang)
    local key = prefix .. ':p:' .. name
    if bang == #channel then
      depth = redis.call('LLEN', key)
    else
      depth = tonumber(redis.call('HGET', prefix .. ':n:' .. name, channel) or 0)
    end
    if depth > 0 then oldest = head_sent(key) end
  else
    local key = prefix .. ':c:' .. channel
    depth = redis.call('LLEN', key)
    oldest = head_sent(key)
    local stream = prefix .. ':q:' .. channel
    local length = redis.call('XLEN', stream)
    if length > 0 then
      depth = depth + length
      local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1][1]
      local sent = tonumber(string.sub(first, 1, string.find(first, '-', 1, true) - 1))
      if oldest < 0 or sent < oldest then oldest = sent end
    end
  end
  out[#out + 1] = channel
  out[#out + 1] = depth
  out[#out + 1] = oldest
  out[#out + 1] = redis.call('HGETALL', prefix .. ':s:' .. name)
  out[#out + 1] = redis.call(
    'ZCOUNT', prefix .. ':u:' .. name, now - @window@, '+inf')
end
return out
"""

# ARGV: prefix, stream key, entry id.
_ACK = """
local acked = redis.call('XACK', ARGV[2], '@group@', ARGV[3])
redis.call('XDEL', ARGV[2], ARGV[3])
return acked
"""

# ARGV: prefix, ttl ms, stream keys. Give each stream its consumer group.
_ENSURE_GROUPS = """
for i = 3, #ARGV do
  local made = redis.pcall('XGROUP', 'CREATE', ARGV[i], '@group@', '0', 'MKSTREAM')
  if type(made) == 'table' and made.ok and redis.call('PTTL', ARGV[i]) < 0 then
    redis.call('PEXPIRE', ARGV[i], ARGV[2])
  end
end
return 1
"""

# ARGV: prefix, wake key, 1 for a stream pump, 0 for a list pump.
_WAKE = """
if ARGV[3] == '1' then
  redis.call('XADD', ARGV[2], 'MAXLEN', 1, '*', 'w', 1)
elseif redis.call('EXISTS', ARGV[2]) == 0 then
  redis.call('RPUSH', ARGV[2], 1)
end
redis.call('PEXPIRE', ARGV[2], 600000)
return 1
"""


_LUA_CONSTANTS = {
    "@stats_ttl@": str(STATS_TTL * 1000),
    "@ttl@": str(STATS_TTL * 1000),
    "@window@": str(CONSUMER_WINDOW * 1000),
    "@group@": CONSUMER_GROUP,
    "@retry@": "50",
}


# ARGV: prefix, delay ms, id, kind, capacity, channel, body, expiry ms. Keep
# the message
# in the zset P:d, scored by when it is due.
_DELAY = """
local key = prefix .. ':d'
local due = now_ms() + tonumber(ARGV[2])
redis.call('ZADD', key, due,
           table.concat({ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]}, ':'))
-- Kept until the last one is due and has had its expiry to find room.
local keep = tonumber(ARGV[2]) + tonumber(ARGV[8])
if redis.call('PTTL', key) < keep then
  redis.call('PEXPIRE', key, keep)
end
return 1
"""

# ARGV: prefix, expiry ms, hold ms. Put the messages that are due on their
# channels (a full channel's wait RETRY_DELAY ms more); return now and when
# the next one is due (-1 for none).
_RELEASE = """
local key = prefix .. ':d'
local now = now_ms()
for _, member in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', now,
                                   'LIMIT', 0, 100)) do
  local a = string.find(member, ':', 1, true)
  local b = string.find(member, ':', a + 1, true)
  local c = string.find(member, ':', b + 1, true)
  local d = string.find(member, ':', c + 1, true)
  if push(string.sub(member, a + 1, b - 1), string.sub(member, c + 1, d - 1),
          string.sub(member, d + 1), tonumber(string.sub(member, b + 1, c - 1)),
          tonumber(ARGV[2]), now, tonumber(ARGV[3]), true) == 1 then
    redis.call('ZREM', key, member)
  else
    redis.call('ZADD', key, now + @retry@, member)
    if redis.call('PTTL', key) < tonumber(ARGV[2]) then
      redis.call('PEXPIRE', key, ARGV[2])
    end
  end
end
local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
if first[2] then return {now, tonumber(first[2])} end
return {now, -1}
"""


class _Script:
    def __init__(self, body):
        text = _LIB + body
        for name, value in _LUA_CONSTANTS.items():
            text = text.replace(name, value)
        self.text = text
        self.sha = hashlib.sha1(self.text.encode()).hexdigest()


SEND = _Script(_SEND)
GROUP_SEND = _Script(_GROUP_SEND)
GROUP_ADD = _Script(_GROUP_ADD)
BOOK = _Script(_BOOK)
STATS = _Script(_STATS)
ACK = _Script(_ACK)
ENSURE_GROUPS = _Script(_ENSURE_GROUPS)
WAKE = _Script(_WAKE)
DELAY = _Script(_DELAY)
RELEASE = _Script(_RELEASE)


class _Link:
    """
    The connections of one event loop to one shard. Commands go straight
    to a redis-py Connection (send_command, read_response): the client's
    per-command machinery (pool, retries, instrumentation) would cost a
    quarter of a round trip. Replies are RESP2, unparsed.
    """

    def __init__(self, shard):
        self.shard = shard
        self.factory = shard.connection_pool()
        self.idle = []
        self.opened = set()
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

    async def pipeline(self, *commands):
        """Run commands in one round trip; return their replies."""
        reused = bool(self.idle)
        connection = self.idle.pop() if reused else self.new_connection()
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
            if len(self.idle) < 32:
                self.idle.append(connection)
            else:
                self.opened.discard(connection)
                await connection.disconnect()

    @staticmethod
    async def _run(connection, commands):
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
        try:
            return await self.call("EVALSHA", script.sha, 0, *args)
        except NoScriptError:
            # Redis restarted (or flushed its scripts) since the last load.
            await self.call("SCRIPT", "LOAD", script.text)
            return await self.call("EVALSHA", script.sha, 0, *args)

    async def aclose(self):
        for connection in list(self.opened):
            await connection.disconnect()
        self.opened.clear()
        self.idle.clear()
        if self._client is not None:
            await self._client.aclose()


def _script_on(call, script, args):
    """Run script with call(*command), loading it first if Redis lost it."""
    try:
        return call("EVALSHA", script.sha, 0, *args)
    except NoScriptError:
        call("SCRIPT", "LOAD", script.text)
        return call("EVALSHA", script.sha, 0, *args)


def _run_script_sync(client, script, args):
    """Run script with a redis-py sync client."""
    return _script_on(client.execute_command, script, args)


def shard_name(url):
    """Return a shard's name on the hash ring: host:port/db, no credentials."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    if parts.scheme == "unix":
        db = query.get("db", ["0"])[0]
        return "unix:%s/%s" % (parts.path, db)
    db = parts.path.lstrip("/") or query.get("db", ["0"])[0]
    return "%s:%s/%s" % (parts.hostname or "localhost", parts.port or 6379, db)


class _Shard:
    """One Redis server: its address, its sync client and its health."""

    def __init__(self, name, url, layer):
        self.name = name
        self.url = url
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
            "socket_keepalive_options": _KEEPALIVE,
            "retry_on_error": [RedisConnectionError],
            **_NO_SETINFO,
            **self.layer.connection_kwargs,
            "retry": retries,
        }

    def sync_client(self):
        if self._sync is None:
            with self._lock:
                if self._sync is None:
                    self._sync = redis.Redis.from_url(
                        self.url,
                        **self.client_kwargs(
                            self.layer.socket_timeout, Retry(NoBackoff(), 1)
                        ),
                    )
        return self._sync

    def connection_pool(self):
        # No socket_timeout: redis-py would arm a timer around every read
        # and write, which costs a tenth of a round trip. Commands are timed
        # by _LoopState.command() instead, blocking calls by TCP keepalive.
        return redis.asyncio.ConnectionPool.from_url(
            self.url, **self.client_kwargs(None, AsyncRetry(NoBackoff(), 1))
        )

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


class _Waiter:
    """A receive() waiting for a message on one or more channels."""

    __slots__ = ("channels", "loop", "future", "result", "routes")

    def __init__(self, channels, loop):
        self.channels = channels
        self.loop = loop
        self.future = loop.create_future()
        self.result = None
        # (pump, key) pairs this waiter keeps wanted.
        self.routes = []


class _Item:
    """A popped message waiting in this process for a receive()."""

    __slots__ = ("message", "deadline", "token", "shard", "raw", "since", "depth")

    def __init__(self, message, deadline, token=None, shard=None, raw=None, depth=None):
        self.message = message
        self.deadline = deadline
        # (shard, stream key, entry id) of an at-least-once message.
        self.token = token
        # Shard and raw element of an ordinary message, to put it back.
        self.shard = shard
        self.raw = raw
        self.since = time.monotonic()
        # The key of the depth to lower once the message is handed out or
        # dropped (a process-specific or single-reader channel's).
        self.depth = depth


def _cancelling():
    """Return True if the current task was asked to cancel (Python 3.11+)."""
    task = asyncio.current_task()
    return task is not None and getattr(task, "cancelling", lambda: 0)() > 0


async def _timed(awaitable):
    """Return (local ms before, the result, local ms after)."""
    before = time.time() * 1000
    result = await awaitable
    return before, result, time.time() * 1000


def _server_version(info):
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


def _resolve(future):
    if not future.done():
        future.set_result(None)


class _Pump:
    """
    The blocking receive of one (event loop, shard, family): "list" pops
    shared lists with BLPOP, "owned" pops the process-specific and
    single-reader lists of this process with BLPOP, "stream" reads
    at-least-once streams with XREADGROUP.
    """

    def __init__(self, state, shard, family, number):
        self.state = state
        self.layer = state.layer
        self.loop = state.loop
        self.shard = shard
        self.family = family
        # key -> number of waiters wanting it (guarded by layer._lock).
        self.keys = {}
        # key -> monotonic time until which a key nobody waits on is popped.
        self.linger = {}
        # Keys of the blocking call under way, or None.
        self.in_flight = None
        self.event = asyncio.Event()
        self.task = None
        self.closing = False
        self.waking = False
        self.ready = False
        self.burst = False
        # Whether the server has BLMPOP (Redis 7.0+), found by _setup(), and
        # the count of the latest.
        self.blmpop = False
        self.count = 1
        # Whether the latest batch found messages; full BLMPOPs since one
        # that found none.
        self.batch_found = True
        self.batch_skipped = 0
        self.probing = False
        self.wake_key = "%s:w:%s:%d" % (
            self.layer.prefix,
            self.layer.client_prefix,
            number,
        )
        # Blocking calls run on their own connection, allowed to wait longer
        # than the block time; failures are retried here, not by redis-py.
        self._wake_bytes = self.wake_key.encode()
        self.connection = state.link(shard).new_connection()

    async def call(self, *args):
        """Run a command on the pump's own connection."""
        await self.connection.send_command(*args)
        return await self.connection.read_response()

    async def script(self, script, args):
        try:
            return await self.call("EVALSHA", script.sha, 0, *args)
        except NoScriptError:
            await self.call("SCRIPT", "LOAD", script.text)
            return await self.call("EVALSHA", script.sha, 0, *args)

    def kick(self):
        """Make sure the pump serves the keys wanted now (in its loop)."""
        if self.closing:
            return
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self.run())
        self.event.set()
        if self.in_flight is not None:
            with self.layer._lock:
                in_flight = self.in_flight
                stale = in_flight is not None and any(
                    key not in in_flight for key in self.keys
                )
            if stale:
                self.wake()

    def wake(self):
        """End the blocking call under way, without cancelling it."""
        if not self.waking and not self.closing:
            self.waking = True
            self.state.spawn(self._wake())

    async def _wake(self):
        try:
            args = [
                self.layer.prefix,
                self.wake_key,
                "1" if self.family == "stream" else "0",
            ]
            await self.state.command(self.shard, lambda link: link.script(WAKE, args))
        except _CONNECTION_ERRORS:
            pass
        finally:
            self.waking = False

    async def run(self):
        backoff = 0.1
        reclaim_at = 0.0
        ensured = set()
        while not self.closing:
            if _cancelling():
                # A cancellation that redis-py turned into a return value or
                # an error still ends the pump.
                raise asyncio.CancelledError
            with self.layer._lock:
                wanted = bool(self.keys)
            if not wanted:
                self.event.clear()
                await self.event.wait()
                continue
            reply = None
            try:
                # Preparations await Redis; each one starts the loop over so
                # that the blocking call below uses the keys wanted by then.
                if not self.ready:
                    await self._setup()
                    ensured.clear()
                    continue
                if self.family == "stream":
                    with self.layer._lock:
                        missing = [key for key in self.keys if key not in ensured]
                    if missing:
                        await self._ensure_groups(missing)
                        ensured.update(missing)
                        continue
                    if time.monotonic() >= reclaim_at:
                        reclaim_at = time.monotonic() + self.layer.reclaim_interval
                        with self.layer._lock:
                            keys = list(self.keys)
                        await self._reclaim(keys)
                        continue
                elif self.burst:
                    # Messages are coming in: while several receives wait,
                    # take one message for each in a single round trip
                    # (BLMPOP does that itself for receives on one list).
                    self.burst = await self._take_batch()
                    if self.burst:
                        continue
                reply = await self._block(reclaim_at)
            except _CONNECTION_ERRORS as e:
                with self.layer._lock:
                    self.in_flight = None
                self.ready = False
                if self.closing:
                    break
                if _cancelling():
                    # redis-py closes the connection of a cancelled command,
                    # which can raise an error in place of CancelledError.
                    raise asyncio.CancelledError
                self.shard.failed(e, "receives wait and retry")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.layer.max_backoff)
                continue
            except ResponseError as e:
                with self.layer._lock:
                    self.in_flight = None
                self.ready = False
                if "NOGROUP" in str(e):
                    # A stream or its group vanished (expiry, flush, restart):
                    # _setup() and _ensure_groups() make them again.
                    await asyncio.sleep(0.05)
                    continue
                logger.error("Redis shard %s refused a receive: %s", self.shard.name, e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.layer.max_backoff)
                continue
            except Exception:
                # A bug must not end the receives of the process for good.
                with self.layer._lock:
                    self.in_flight = None
                self.ready = False
                logger.exception("Receive from Redis shard %s failed.", self.shard.name)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.layer.max_backoff)
                continue
            with self.layer._lock:
                self.in_flight = None
            backoff = 0.1
            self.shard.succeeded()
            if reply:
                try:
                    if self.family != "stream":
                        key, elements = reply if self.blmpop else (reply[0], reply[1:])
                        if key != self._wake_bytes:
                            self.burst = not self.blmpop or self._batch_worth(
                                len(elements)
                            )
                            for element in elements:
                                self.layer._on_element(self, key, element)
                    else:
                        self._on_stream_reply(reply)
                except Exception:
                    logger.exception(
                        "Dropped what Redis shard %s answered.", self.shard.name
                    )
                # Let the receives just handed a message run before the next
                # blocking call is written: a reply reaches its client, a
                # request its view, one socket write sooner.
                await asyncio.sleep(0)

    def _batch_worth(self, popped):
        """
        Return whether a batch should follow a BLMPOP that popped this many:
        not when it popped fewer than it could (its list is empty), and,
        after a batch that took messages of fewer than two lists, only once
        in BATCH_RETRY times: messages of one list, the next BLMPOP takes
        with one command, not one LPOP per waited-on list.
        """
        if popped < self.count:
            return False
        if not self.batch_found:
            self.batch_skipped += 1
            if self.batch_skipped < BATCH_RETRY:
                return False
            self.batch_skipped = 0
        self.probing = True
        return True

    async def _take_batch(self):
        """Pop, without blocking, one message per waiting receive."""
        with self.layer._lock:
            wanted = [(key, count) for key, count in self.keys.items() if count]
        if sum(count for _, count in wanted) < 2:
            return False
        if self.blmpop and len(wanted) < 2:
            # BLMPOP takes several messages of one list itself.
            return False
        # Plain LPOPs in one round trip, not a script: Lua would copy every
        # large message it returns.
        connection = self.connection
        await connection.send_packed_command(
            connection.pack_commands([("LPOP", key, count) for key, count in wanted])
        )
        lists = 0
        for key, _ in wanted:
            elements = await connection.read_response()
            if elements:
                lists += 1
            for element in elements or ():
                self.layer._on_element(self, key.encode(), element)
        if self.probing:
            # The first batch after a blocking pop tells whether batches
            # pay in this pump's traffic: they do when they take messages
            # of two lists or more.
            self.batch_found = lists >= 2
            self.probing = False
        # Go on with batches while they pay: with BLMPOP, while they take
        # messages of several lists.
        return lists >= 2 if self.blmpop else lists > 0

    def _block(self, reclaim_at):
        """Start the blocking call on the keys wanted now; return it."""
        with self.layer._lock:
            if self.linger:
                now = time.monotonic()
                for key, until in list(self.linger.items()):
                    if self.keys.get(key):
                        del self.linger[key]
                    elif until <= now:
                        del self.linger[key]
                        self.keys.pop(key, None)
            keys = list(self.keys)
            # As many messages as the receives waiting on any one key: a
            # shared channel's messages beyond that are left for others.
            count = self.count = min(
                (n for n in self.keys.values() if n > 0), default=1
            )
            self.in_flight = frozenset(keys)
        if self.family != "stream" and self.blmpop:
            return self.call(
                "BLMPOP",
                self.layer.block_timeout,
                len(keys) + 1,
                *keys,
                self.wake_key,
                "LEFT",
                "COUNT",
                count,
            )
        if self.family != "stream":
            return self.call("BLPOP", *keys, self.wake_key, self.layer.block_timeout)
        block = min(self.layer.block_timeout, max(0.01, reclaim_at - time.monotonic()))
        return self.call(
            "XREADGROUP",
            "GROUP",
            CONSUMER_GROUP,
            self.layer.client_prefix,
            "COUNT",
            1,
            "BLOCK",
            int(block * 1000),
            "STREAMS",
            *keys,
            self.wake_key,
            *([">"] * (len(keys) + 1)),
        )

    async def _setup(self):
        self.shard.set_clock(*await _timed(self.call("TIME")))
        if self.family == "stream":
            await self._ensure_groups([self.wake_key])
        else:
            version = _server_version(await self.call("INFO", "server"))
            self.blmpop = self.layer._use_blmpop(version)
        self.ready = True

    async def _ensure_groups(self, keys):
        await self.script(
            ENSURE_GROUPS, [self.layer.prefix, self.layer.stream_ttl_ms, *keys]
        )

    async def _reclaim(self, keys):
        """Claim messages whose consumer did not ack in time; True if any."""
        claimed = False
        for key in keys:
            reply = await self.call(
                "XAUTOCLAIM",
                key,
                CONSUMER_GROUP,
                self.layer.client_prefix,
                int(self.layer.visibility_timeout * 1000),
                "0-0",
                "COUNT",
                1,
            )
            entries = reply[1] if reply else None
            for entry in entries or ():
                if entry and entry[1]:
                    logger.info(
                        "Redelivering message %s of %s: not acknowledged within "
                        "%s s.",
                        entry[0].decode(),
                        key,
                        self.layer.visibility_timeout,
                    )
                    self.layer._on_entry(self, key.encode(), entry[0], entry[1])
                    claimed = True
        return claimed

    def _on_stream_reply(self, reply):
        wake = self._wake_bytes
        if isinstance(reply, dict):
            # RESP3 answers XREADGROUP with a map of key -> entries.
            reply = reply.items()
        for key, entries in reply:
            if key == wake:
                continue
            for entry_id, fields in entries:
                self.layer._on_entry(self, key, entry_id, fields)

    async def aclose(self):
        self.closing = True
        task = self.task
        if task is not None and not task.done():
            with self.layer._lock:
                busy = self.in_flight is not None
            if busy:
                try:
                    await asyncio.wait_for(self._wake(), 1)
                except (asyncio.TimeoutError, *_CONNECTION_ERRORS):
                    pass
                await asyncio.wait({task}, timeout=1)
            self.event.set()
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.connection.disconnect()


class _LoopState:
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
            link = self.links[shard.name] = _Link(shard)
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
            getattr(task, "uncancel", int)()
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
                        getattr(task, "uncancel", int)()

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
            pump = self.pumps[shard.name, family] = _Pump(
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


class RedisChannelLayer(BaseChannelLayer):
    """
    A channel layer on Redis servers (LOCATION: one URL or a list of shards).

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
    - connection_kwargs: more keyword arguments for redis-py clients.
    """

    extensions = ["groups", "flush", "stats", "peek", "delay", "at_least_once"]

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
        connection_kwargs=None,
        **options,
    ):
        super().__init__(location=location, **options)
        urls = [location] if isinstance(location, str) else list(location or ())
        if not urls:
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
        self.connection_kwargs = dict(connection_kwargs or {})
        self.expiry_ms = int(self.expiry * 1000)
        self.hold_ms = int(visibility_timeout * 1000)
        self.stream_ttl_ms = self.expiry_ms + self.hold_ms
        self.shards = {}
        for url in urls:
            name = shard_name(url)
            if name in self.shards:
                raise ValueError("Redis server %s is listed twice." % name)
            self.shards[name] = _Shard(name, url, self)
        self.ring = HashRing(self.shards)
        self._single = next(iter(self.shards.values())) if len(urls) == 1 else None
        self._lock = threading.Lock()
        self._states = {}
        # channel -> deque of _Waiter; channel -> deque of _Item.
        self._waiters = {}
        self._buffer = {}
        # id(message) -> (message, token, deadline) of unacked messages.
        self._unacked = {}
        self._book_received = collections.Counter()
        self._book_sent = collections.Counter()
        self._book_depths = collections.Counter()
        self._book_seen = set()
        self._seen_at = {}
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
            state = self._states[loop] = _LoopState(self, loop)
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
            except _CONNECTION_ERRORS as e:
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
        raise ChannelLayerUnavailable(
            "Cannot send to %r: Redis is unreachable (%s)." % (channel, error)
        ) from error

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
            shard.set_clock(*await _timed(link.call("TIME")))
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
        return _script_on(shard.sync_call, SEND, args[:-1] + [b"0"])

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
                    sent = _script_on(shard.sync_call, SEND, args)
            except _CONNECTION_ERRORS as e:
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
        raise ChannelLayerUnavailable(
            "Cannot send to %r: Redis is unreachable (%s)." % (channel, error)
        ) from error

    def _running_state(self):
        """Return the state of an event loop of this layer still running."""
        for state in list(self._states.values()):
            if not state.closed and state.loop.is_running():
                return state
        return None

    def _count_send(self, shard, name, sent):
        """Count a send to a channel whose stats name is name."""
        key = (shard.name, name, "s" if sent else "f")
        with self._lock:
            self._book_sent[key] += 1

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
                waiter = _Waiter(channels, loop)
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
        Receive from outside an event loop. Each call runs a private event
        loop (through async_to_sync) whose connections are closed before it
        returns; code that receives often should use receive_any().
        """
        from asgiref.sync import async_to_sync

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

    def _take_buffered(self, channels):
        if not self._buffer:
            return None
        now = time.monotonic()
        for channel in channels:
            items = self._buffer.get(channel)
            while items:
                item = items.popleft()
                if item.deadline > now:
                    if not items:
                        del self._buffer[channel]
                    return channel, item
                if item.depth is not None:
                    self._book_depths[item.depth] += 1
            if items is not None:
                del self._buffer[channel]
        return None

    def _register(self, waiter, state):
        pumps = []
        for channel in waiter.channels:
            self._waiters.setdefault(channel, collections.deque()).append(waiter)
            for shard, family, key in self._keys(channel):
                pump = state.pump(shard, family)
                pump.keys[key] = pump.keys.get(key, 0) + 1
                waiter.routes.append((pump, key))
                if pump not in pumps:
                    pumps.append(pump)
        return pumps

    def _forget_waiter(self, waiter, cancelled=False):
        """Unregister waiter; return the pumps to wake (lock held)."""
        for channel in waiter.channels:
            waiters = self._waiters.get(channel)
            if waiters is not None:
                try:
                    waiters.remove(waiter)
                except ValueError:
                    pass
                if not waiters:
                    del self._waiters[channel]
        stale = []
        for pump, key in waiter.routes:
            left = pump.keys.get(key, 0) - 1
            if left > 0:
                pump.keys[key] = left
                continue
            if self._owned(key):
                # Every message of a process-specific or single-reader list
                # is this process's: keep popping it for a while, so that a
                # reply is usually here before its receive() is called.
                pump.keys[key] = 0
                pump.linger[key] = time.monotonic() + (
                    OWNED_LINGER
                    if key.startswith(self._p_prefix_str)
                    else SINGLE_READER_LINGER
                )
                continue
            pump.keys.pop(key, None)
            # A cancelled receive leaves a blocking pop under way: end it,
            # so that it does not take messages nobody here wants.
            if (
                cancelled
                and pump.in_flight is not None
                and key in pump.in_flight
                and pump not in stale
            ):
                stale.append(pump)
        waiter.routes = []
        return stale

    def _use_blmpop(self, version):
        """
        Return whether pumps pop with BLMPOP (Redis 7.0+: several messages
        in one blocking call) or with BLPOP and batches of LPOPs.
        """
        return version >= (7, 0)

    def _owned(self, key):
        return key.startswith(self._p_prefix_str) or "?" in key

    def _hand_out(self, channel, item, state):
        if item.token is not None:
            with self._lock:
                self._unacked[id(item.message)] = (
                    item.message,
                    item.token,
                    time.monotonic() + self.visibility_timeout,
                )
        elif item.depth is not None:
            with self._lock:
                self._book_depths[item.depth] += 1
                pending = self._book_depths[item.depth]
            if pending * 2 >= self.get_capacity(channel):
                # A channel that turns over half its capacity before the
                # bookkeeping is written would look full: write it now.
                state.spawn(self._flush_async(state))
            elif not state.flush_scheduled:
                self._schedule_flush(state)
        return channel, item.message

    def _note_consumer(self, channels, state):
        """Record, for stats, that this task receives from channels."""
        task_id = id(asyncio.current_task())
        now = time.monotonic()
        seen_at = self._seen_at
        added = False
        for channel in channels:
            name = stats_name(channel)
            # The receivers of a process's short-lived channels (a task per
            # request) count as one: the process.
            owner = None if is_short_lived(channel) else task_id
            key = (name, owner)
            if now - seen_at.get(key, -60) < 10:
                continue
            if len(seen_at) > 10000:
                seen_at.clear()
            seen_at[key] = now
            if owner is None:
                consumer = self.client_prefix
            else:
                consumer = "%s.%x" % (self.client_prefix, owner)
            with self._lock:
                self._book_seen.add((self._home(name).name, name, consumer))
            added = True
        if added:
            self._schedule_flush(state)

    # What pumps pop.

    def _on_element(self, pump, key, element):
        """Handle an element BLPOP took from key (both bytes)."""
        shard = pump.shard
        sent, _, rest = element.partition(b":")
        if key.startswith(self._p_prefix):
            channel, _, body = rest.partition(b":")
            channel = channel.decode()
            name = key[len(self._p_prefix) :].decode()
            raw = None
            depth = (shard.name, name, channel)
        else:
            channel = key[len(self._c_prefix) :].decode()
            name = stats_name(channel)
            body = rest
            raw = element
            depth = (shard.name, None, channel) if "?" in channel else None
        with self._lock:
            self._book_received[shard.name, name] += 1
        if not pump.state.flush_scheduled:
            self._schedule_flush(pump.state)
        remaining = int(sent) + self.expiry_ms - shard.server_ms()
        message = None
        if remaining > 0:
            try:
                message = self.serializer.loads(body)
            except DecodeError as e:
                logger.error(
                    "Dropped a message on %s that cannot be read: %s", channel, e
                )
        if message is None:
            if depth is not None:
                with self._lock:
                    self._book_depths[depth] += 1
            return
        item = _Item(
            message, time.monotonic() + remaining / 1000, None, shard, raw, depth
        )
        self._deliver(channel, item, pump.state)

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
            try:
                message = self.serializer.loads(body)
            except DecodeError as e:
                logger.error(
                    "Dropped a message on %s that cannot be read: %s", channel, e
                )
        if message is None:
            # Expired or unreadable: acknowledge it, so nobody gets it.
            pump.state.spawn(self._ack_token(token))
            return
        # A message kept here longer than half the visibility timeout may be
        # redelivered elsewhere; it is then dropped here, unacknowledged.
        deadline = time.monotonic() + min(remaining / 1000, self.visibility_timeout / 2)
        self._deliver(channel, _Item(message, deadline, token), pump.state)

    def _deliver(self, channel, item, state):
        waiter = None
        with self._lock:
            for candidate in self._waiters.get(channel, ()):
                if candidate.result is None and not candidate.future.done():
                    waiter = candidate
                    break
            if waiter is not None:
                waiter.result = (channel, item)
                self._forget_waiter(waiter)
            else:
                self._buffer.setdefault(channel, collections.deque()).append(item)
        if waiter is None:
            self._schedule_sweep(state)
        elif waiter.loop is state.loop:
            _resolve(waiter.future)
        else:
            waiter.loop.call_soon_threadsafe(_resolve, waiter.future)

    def _schedule_sweep(self, state):
        if not state.sweep_scheduled and not state.closed:
            state.sweep_scheduled = True
            state.later(RETURN_AFTER, lambda: self._sweep(state))

    async def _sweep(self, state, older_than=RETURN_AFTER):
        """
        Drop expired messages waiting here, and put back ordinary messages
        nobody here received for a while, for other consumers.
        """
        state.sweep_scheduled = False
        now = time.monotonic()
        returned = []
        left = False
        with self._lock:
            for channel, items in list(self._buffer.items()):
                keep = collections.deque()
                # Once one goes back, the newer ones go too: a message left
                # here would come out before it.
                going = False
                for item in items:
                    if item.deadline <= now:
                        if item.depth is not None:
                            self._book_depths[item.depth] += 1
                        continue
                    if item.raw is not None and (
                        going or now - item.since >= older_than
                    ):
                        going = True
                        returned.append((channel, item))
                    else:
                        keep.append(item)
                        left = True
                if keep:
                    self._buffer[channel] = keep
                else:
                    del self._buffer[channel]
        # Each channel's in one LPUSH, the newest first: the order is kept
        # even if a pump pops the head again at once. A message put back
        # keeps its place in its channel's depth.
        by_channel = {}
        for channel, item in returned:
            by_channel.setdefault((channel, item.shard), []).append(item)
        for (channel, shard), items in by_channel.items():
            key = "%s:c:%s" % (self.prefix, channel)
            commands = [
                ("LPUSH", key, *[item.raw for item in reversed(items)]),
                ("PEXPIRE", key, self.expiry_ms),
            ]
            if items[0].depth is not None:
                counter = "%s:n:%s" % (self.prefix, channel)
                commands.append(("PEXPIRE", counter, self.expiry_ms))
            try:
                await state.command(
                    shard, lambda link, commands=commands: link.pipeline(*commands)
                )
            except _CONNECTION_ERRORS as e:
                logger.warning(
                    "Lost %d messages of %s putting them back: %s",
                    len(items),
                    channel,
                    e,
                )
        if left:
            self._schedule_sweep(state)
        with self._lock:
            dropped = bool(self._book_depths)
        if dropped:
            self._schedule_flush(state)

    # Bookkeeping.

    def _schedule_flush(self, state):
        if not state.flush_scheduled:
            state.flush_scheduled = True
            state.later(FLUSH_DELAY, lambda: self._flush_async(state))

    def _take_book(self):
        with self._lock:
            received, self._book_received = self._book_received, collections.Counter()
            sent, self._book_sent = self._book_sent, collections.Counter()
            depths, self._book_depths = self._book_depths, collections.Counter()
            seen, self._book_seen = self._book_seen, set()
        per_shard = collections.defaultdict(lambda: [self.prefix])
        for (shard, name, tag), n in sent.items():
            per_shard[shard] += [tag, name, n]
        for (shard, name), n in received.items():
            per_shard[shard] += ["r", name, n]
        for (shard, name, channel), n in depths.items():
            if name is None:
                per_shard[shard] += ["e", channel, n]
            else:
                per_shard[shard] += ["d", name, channel, n]
        for shard, name, consumer in seen:
            per_shard[shard] += ["c", name, consumer]
        return per_shard

    async def _flush_async(self, state=None):
        """Write the pending bookkeeping with state's clients."""
        if state is None:
            state, loop = self._state_now()
            if state is None:
                state = await self._new_state(loop)
        else:
            state.flush_scheduled = False
        per_shard = self._take_book()
        if not per_shard:
            return
        results = await asyncio.gather(
            *(
                state.command(
                    self.shards[name],
                    lambda link, args=args: link.script(BOOK, args),
                )
                for name, args in per_shard.items()
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, Exception):
                logger.debug("Lost receive bookkeeping: %s", result)

    def _flush_sync(self):
        for name, args in self._take_book().items():
            try:
                _run_script_sync(self.shards[name].sync_client(), BOOK, args)
            except _CONNECTION_ERRORS as e:
                logger.debug("Lost receive bookkeeping: %s", e)

    # Acknowledgement.

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
        except _CONNECTION_ERRORS as e:
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
                _run_script_sync(shard.sync_client(), ACK, [self.prefix, key, entry_id])
            except _CONNECTION_ERRORS as e:
                logger.warning("Could not acknowledge a message of %s: %s", key, e)

    # Groups.

    def _group_add_args(self, group, channel):
        self.validate_group_name(group)
        self.validate_channel_name(channel)
        return self._home(channel), [
            self.prefix,
            group,
            channel,
            self._kind(channel),
            self.get_capacity(channel),
            int(self.group_expiry * 1000),
        ]

    async def group_add(self, group, channel):
        shard, args = self._group_add_args(group, channel)
        await self._call(shard, lambda link: link.script(GROUP_ADD, args))

    def group_add_sync(self, group, channel):
        shard, args = self._group_add_args(group, channel)
        self._call_sync(shard, lambda c: _run_script_sync(c, GROUP_ADD, args))

    def _group_discard_args(self, group, channel):
        self.validate_group_name(group)
        self.validate_channel_name(channel)
        return self._home(channel), "%s:g:%s" % (self.prefix, group)

    async def group_discard(self, group, channel):
        shard, key = self._group_discard_args(group, channel)
        await self._call(shard, lambda link: link.call("HDEL", key, channel))

    def group_discard_sync(self, group, channel):
        shard, key = self._group_discard_args(group, channel)
        self._call_sync(shard, lambda c: c.execute_command("HDEL", key, channel))

    def _group_send_args(self, group, message):
        self.validate_group_name(group)
        body = self.serializer.dumps(message)
        return [self.prefix, group, body, self.expiry_ms, self.hold_ms]

    async def group_send(self, group, message):
        """Send to every member: one script per shard, all shards at once."""
        args = self._group_send_args(group, message)
        await asyncio.gather(
            *(
                self._call(shard, lambda link: link.script(GROUP_SEND, args))
                for shard in self.shards.values()
            )
        )

    def group_send_sync(self, group, message):
        args = self._group_send_args(group, message)
        for shard in self.shards.values():
            self._call_sync(shard, lambda c: _run_script_sync(c, GROUP_SEND, args))

    async def _call(self, shard, operation):
        state, loop = self._state_now()
        if state is None:
            state = await self._new_state(loop)
        try:
            return await state.command(shard, operation)
        except _CONNECTION_ERRORS as e:
            shard.failed(e, "commands fail until it is back")
            raise ChannelLayerUnavailable(
                "Redis shard %s is unreachable (%s)." % (shard.name, e)
            ) from e

    def _call_sync(self, shard, operation):
        try:
            return operation(shard.sync_client())
        except _CONNECTION_ERRORS as e:
            shard.failed(e, "commands fail until it is back")
            raise ChannelLayerUnavailable(
                "Redis shard %s is unreachable (%s)." % (shard.name, e)
            ) from e

    # Flush.

    def _forget_local(self):
        with self._lock:
            self._buffer.clear()
            self._unacked.clear()
            self._book_received.clear()
            self._book_sent.clear()
            self._book_depths.clear()
            self._book_seen.clear()

    async def flush(self):
        """Delete every key under this layer's prefix on every shard."""
        self._forget_local()
        match = "%s:*" % self.prefix

        async def flush_shard(link):
            scan = link.client.scan_iter(match=match, count=1000)
            async for batch in _batches(scan):
                await link.call("UNLINK", *batch)

        await asyncio.gather(
            *(self._call(shard, flush_shard) for shard in self.shards.values())
        )

    def flush_sync(self):
        self._forget_local()
        match = "%s:*" % self.prefix

        def flush_shard(client):
            batch = []
            for key in client.scan_iter(match=match, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    client.unlink(*batch)
                    batch = []
            if batch:
                client.unlink(*batch)

        for shard in self.shards.values():
            self._call_sync(shard, flush_shard)

    # Stats.

    def _stats_args(self, channels):
        if channels is None:
            return [self.prefix, "1"]
        channels = list(channels)
        for channel in channels:
            self.validate_channel_name(channel)
        return [self.prefix, "0", *channels]

    async def stats(self, channels=None):
        """Return the load of channels, summed over every shard."""
        await self._flush_async()
        args = self._stats_args(channels)
        replies = await asyncio.gather(
            *(
                self._call(shard, lambda link: link.script(STATS, args))
                for shard in self.shards.values()
            )
        )
        return self._merge_stats(channels, replies)

    def stats_sync(self, channels=None):
        self._flush_sync()
        args = self._stats_args(channels)
        replies = [
            self._call_sync(shard, lambda c: _run_script_sync(c, STATS, args))
            for shard in self.shards.values()
        ]
        return self._merge_stats(channels, replies)

    def _merge_stats(self, channels, replies):
        totals = {}
        for reply in replies:
            now = int(reply[0])
            second = now // 1000
            for i in range(1, len(reply), 5):
                channel = reply[i].decode()
                depth, oldest = int(reply[i + 1]), int(reply[i + 2])
                fields = reply[i + 3]
                fields = dict(zip(fields[::2], fields[1::2]))
                total = totals.setdefault(channel, collections.Counter())
                total["depth"] += depth
                if oldest >= 0 and depth:
                    age = max(0, now - oldest) / 1000
                    total["oldest_age"] = max(total["oldest_age"], age)
                total["sent"] += int(fields.get(b"s", 0))
                total["received"] += int(fields.get(b"r", 0))
                total["full"] += int(fields.get(b"f", 0))
                for bucket in range(12):
                    started = int(fields.get(b"t%d" % bucket, 0))
                    if second - RATE_WINDOW < started <= second:
                        total["in"] += int(fields.get(b"s%d" % bucket, 0))
                        total["out"] += int(fields.get(b"r%d" % bucket, 0))
                total["consumers"] += int(reply[i + 4])
        names = sorted(totals) if channels is None else list(channels)
        result = {}
        for name in names:
            total = totals.get(name, collections.Counter())
            result[name] = {
                "depth": total["depth"],
                "oldest_age": round(total["oldest_age"], 3),
                "capacity": self.get_capacity(name),
                "sent": total["sent"],
                "received": total["received"],
                "in_rate": total["in"] / RATE_WINDOW,
                "out_rate": total["out"] / RATE_WINDOW,
                "full": total["full"],
                "consumers": total["consumers"],
            }
        return result

    # Delayed delivery.

    def _delay_args(self, channel, message, delay):
        kind, capacity, targets, _ = self._channel_info(channel)
        body = self.serializer.dumps(message)
        args = [
            self._prefix_arg,
            int(max(0.0, delay) * 1000),
            secrets.token_hex(8),
            kind,
            capacity,
            channel,
            body,
            self._expiry_arg,
        ]
        # The home shard: where the channel's messages go, and its capacity
        # holds.
        return targets[0], args

    async def send_later(self, channel, message, delay):
        """
        Put message on channel in delay seconds. The message waits in Redis
        (zset P:d): every process receiving from the layer, and the sender,
        put due messages on their channels; a full channel's is retried.
        """
        shard, args = self._delay_args(channel, message, delay)
        state, loop = self._state_now()
        if state is None:
            state = await self._new_state(loop)
        await self._call(shard, lambda link: link.script(DELAY, args))
        state.release_delayed()

    def send_later_sync(self, channel, message, delay):
        shard, args = self._delay_args(channel, message, delay)
        self._call_sync(shard, lambda client: _run_script_sync(client, DELAY, args))
        timer = threading.Timer(max(0.0, delay), self._release_sync, (shard,))
        timer.daemon = True
        timer.start()

    def _release_sync(self, shard, attempts=100):
        """Release due messages of shard from a timer thread (sync senders)."""
        args = [self._prefix_arg, self._expiry_arg, self._hold_arg]
        try:
            now, due = _run_script_sync(shard.sync_client(), RELEASE, args)
        except _CONNECTION_ERRORS:
            due = -1
        if 0 <= due - now <= 1000 and attempts > 1:
            # One more is due soon (or a full channel's wait): again then.
            timer = threading.Timer(
                (due - now) / 1000, self._release_sync, (shard, attempts - 1)
            )
            timer.daemon = True
            timer.start()

    async def _release(self, state):
        """Release due delayed messages on every shard until state closes."""
        args = [self._prefix_arg, self._expiry_arg, self._hold_arg]
        while not state.closed:
            wait = 1.0
            state.release_event.clear()
            for shard in self.shards.values():
                try:
                    now, due = await state.command(
                        shard, lambda link: link.script(RELEASE, args)
                    )
                except _CONNECTION_ERRORS:
                    continue
                except ResponseError as e:
                    logger.error("Redis shard %s refused a release: %s", shard.name, e)
                    continue
                if due >= 0:
                    wait = min(wait, max(0.0, (due - now) / 1000))
            try:
                await asyncio.wait_for(state.release_event.wait(), wait)
            except asyncio.TimeoutError:
                pass

    # Peek.

    def _peek_local(self, channel):
        now = time.monotonic()
        with self._lock:
            items = list(self._buffer.get(channel, ()))
        return [
            (0, self.serializer.loads(self.serializer.dumps(item.message)))
            for item in items
            if item.deadline > now
        ]

    def _peek_parse(self, channel, replies, shards):
        """Return [(sent ms, message)] from what LRANGE/XRANGE returned."""
        found = []
        for shard, reply in zip(shards, replies):
            now = shard.server_ms()
            kind = self._kind(channel)
            for element in reply or ():
                if kind == "q":
                    entry_id, fields = element
                    sent = int(entry_id.split(b"-")[0])
                    if isinstance(fields, dict):
                        body = fields.get(b"m")
                    else:
                        body = dict(zip(fields[::2], fields[1::2])).get(b"m")
                else:
                    head, _, body = element.partition(b":")
                    sent = int(head)
                    if kind == "p":
                        owner, _, body = body.partition(b":")
                        if owner.decode() != channel:
                            continue
                if sent + self.expiry_ms <= now or body is None:
                    continue
                try:
                    found.append((sent, self.serializer.loads(body)))
                except DecodeError:
                    continue
        return found

    def _peek_plan(self, channel):
        """Return [(shard, command args)] reading what waits on channel."""
        self._channel_info(channel)
        plan = []
        for shard, _, key in self._keys(channel):
            if self._kind(channel) == "q":
                # Only what the consumer group has not handed out yet.
                plan.append((shard, ("XRANGE", key, "-", "+"), key))
            else:
                plan.append((shard, ("LRANGE", key, 0, -1), key))
        return plan

    @staticmethod
    def _peek_undelivered(entries, groups):
        last = None
        for group in groups or ():
            if isinstance(group, dict):
                info = group
            else:
                info = dict(zip(group[::2], group[1::2]))
            name = info.get("name", info.get(b"name"))
            if name in (CONSUMER_GROUP, CONSUMER_GROUP.encode()):
                last = info.get("last-delivered-id", info.get(b"last-delivered-id"))
        if last is None:
            return entries
        if isinstance(last, str):
            last = last.encode()
        key = tuple(int(part) for part in last.split(b"-"))
        return [
            entry
            for entry in entries
            if tuple(int(part) for part in entry[0].split(b"-")) > key
        ]

    def _peek_result(self, channel, found, limit):
        found.sort(key=lambda pair: pair[0])
        messages = [message for _, message in found]
        return messages if limit is None else messages[:limit]

    async def peek(self, channel, limit=None):
        """Return copies of what waits on channel, oldest first; take none."""
        plan = self._peek_plan(channel)
        local = self._peek_local(channel)

        async def read(shard, command, key):
            async def operation(link):
                entries = await link.call(*command)
                if command[0] == "XRANGE" and entries:
                    groups = await link.call("XINFO", "GROUPS", key)
                    entries = self._peek_undelivered(entries, groups)
                return entries

            return await self._call(shard, operation)

        replies = await asyncio.gather(*(read(*step) for step in plan))
        found = local + self._peek_parse(channel, replies, [s for s, _, _ in plan])
        return self._peek_result(channel, found, limit)

    def peek_sync(self, channel, limit=None):
        plan = self._peek_plan(channel)
        local = self._peek_local(channel)
        replies = []
        for shard, command, key in plan:

            def operation(client, command=command, key=key):
                entries = client.execute_command(*command)
                if command[0] == "XRANGE" and entries:
                    groups = client.execute_command("XINFO", "GROUPS", key)
                    entries = self._peek_undelivered(entries, groups)
                return entries

            replies.append(self._call_sync(shard, operation))
        found = local + self._peek_parse(channel, replies, [s for s, _, _ in plan])
        return self._peek_result(channel, found, limit)

    # Names.

    def new_channel_sync(self, prefix="specific"):
        return new_channel_name(prefix, self.client_prefix)

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


async def _batches(iterator, size=1000):
    batch = []
    async for item in iterator:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
