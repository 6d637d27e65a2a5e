-- ARGV: prefix, wake key, 1 for a stream pump, 0 for a list pump.
if ARGV[3] == '1' then
  redis.call('XADD', ARGV[2], 'MAXLEN', 1, '*', 'w', 1)
elseif redis.call('EXISTS', ARGV[2]) == 0 then
  redis.call('RPUSH', ARGV[2], 1)
end
redis.call('PEXPIRE', ARGV[2], 600000)
return 1
