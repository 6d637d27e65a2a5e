-- ARGV: prefix, ttl ms, stream keys. Give each stream its consumer group.
for i = 3, #ARGV do
  local made = redis.pcall('XGROUP', 'CREATE', ARGV[i], '@group@', '0', 'MKSTREAM')
  if type(made) == 'table' and made.ok and redis.call('PTTL', ARGV[i]) < 0 then
    redis.call('PEXPIRE', ARGV[i], ARGV[2])
  end
end
return 1
