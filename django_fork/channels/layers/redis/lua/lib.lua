-- Shared by every script, which follows it: ARGV[1] is always the key
-- prefix.
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
