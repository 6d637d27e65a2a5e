-- ARGV: prefix, '1' to add every name seen lately, then channel names.
-- Returns now, then per name: name, depth, sent ms of the oldest message (-1
-- for none), the stats hash, consumers seen.
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
