-- ARGV: prefix, then records: 's' / 'r' / 'f', name, n (n sent, received,
-- refused as full) | 'd', name!, channel, n (n fewer waiting on a
-- process-specific channel) | 'e', channel, n (n fewer waiting on a
-- single-reader channel) | 'c', name, consumer (consumer seen).
local now = now_ms()
-- The 'd' records by depths hash, applied at the end: one HMGET, HSET and
-- HDEL per hash, where a broadcast's thousand channels would cost two
-- commands each.
local lowered = {}
local hashes = {}
local i = 2
while i <= #ARGV do
  local tag = ARGV[i]
  if tag == 's' or tag == 'r' or tag == 'f' then
    count(ARGV[i + 1], tag, tonumber(ARGV[i + 2]), now)
    i = i + 3
  elseif tag == 'd' then
    local depths = prefix .. ':n:' .. ARGV[i + 1]
    local by = lowered[depths]
    if not by then
      by = {}
      lowered[depths] = by
      hashes[#hashes + 1] = depths
    end
    by[ARGV[i + 2]] = (by[ARGV[i + 2]] or 0) + tonumber(ARGV[i + 3])
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
-- Run command on key with args, at most 1000 at a time (unpack's limit).
local function batched(command, key, args)
  local j = 1
  while j <= #args do
    local last = math.min(j + 999, #args)
    local call = {command, key}
    for k = j, last do call[#call + 1] = args[k] end
    redis.call(unpack(call))
    j = last + 1
  end
end
for _, depths in ipairs(hashes) do
  local channels = {}
  for channel in pairs(lowered[depths]) do channels[#channels + 1] = channel end
  local found = {}
  local j = 1
  while j <= #channels do
    local call = {'HMGET', depths}
    for k = j, math.min(j + 999, #channels) do call[#call + 1] = channels[k] end
    for _, depth in ipairs(redis.call(unpack(call))) do
      found[#found + 1] = tonumber(depth or 0)
    end
    j = j + 1000
  end
  local kept, gone = {}, {}
  for k, channel in ipairs(channels) do
    local left = found[k] - lowered[depths][channel]
    if left > 0 then
      kept[#kept + 1] = channel
      kept[#kept + 1] = left
    else
      gone[#gone + 1] = channel
    end
  end
  batched('HSET', depths, kept)
  batched('HDEL', depths, gone)
end
return 1
