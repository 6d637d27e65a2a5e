-- ARGV: prefix, expiry ms, hold ms. Put the messages that are due on their
-- channels (a full channel's wait RETRY_DELAY ms more); return now and when
-- the next one is due (-1 for none).
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
