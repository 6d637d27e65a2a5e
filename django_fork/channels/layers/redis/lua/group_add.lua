-- ARGV: prefix, group, channel, kind, capacity, group expiry ms.
local key = prefix .. ':g:' .. ARGV[2]
local expires = now_ms() + tonumber(ARGV[6])
redis.call('HSET', key, ARGV[3], ms(expires) .. ':' .. ARGV[4] .. ':' .. ARGV[5])
redis.call('PEXPIRE', key, ARGV[6])
return 1
