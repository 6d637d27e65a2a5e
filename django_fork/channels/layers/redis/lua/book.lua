-- ARGV: prefix, then records: 's' / 'r' / 'f', name, n (n sent, received,
-- refused as full) | 'd', name!, channel, n (n fewer waiting on a
-- process-specific channel) | 'e', channel, n (n fewer waiting on a
-- single-reader channel) | 'c', name, consumer (consumer seen).
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
