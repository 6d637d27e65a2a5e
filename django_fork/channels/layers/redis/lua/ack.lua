-- ARGV: prefix, stream key, entry id.
local acked = redis.call('XACK', ARGV[2], '@group@', ARGV[3])
redis.call('XDEL', ARGV[2], ARGV[3])
return acked
