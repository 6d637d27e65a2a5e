-- ARGV: prefix, group, body, expiry ms, hold ms. Returns how many got it.
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
