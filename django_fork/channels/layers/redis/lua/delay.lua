-- ARGV: prefix, delay ms, id, kind, capacity, channel, body, expiry ms. Keep
-- the message in the zset P:d, scored by when it is due.
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
