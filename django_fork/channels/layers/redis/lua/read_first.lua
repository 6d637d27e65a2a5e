-- ARGV: prefix, consumer, stream keys in the order of the receives' channels.
-- Read the next entry of the first stream that has one: one XREADGROUP over
-- several streams would take the next entry of each, and those past the
-- first would wait in the process ahead of newer entries of the streams
-- before theirs. Returns XREADGROUP's reply for that stream, or false.
for i = 3, #ARGV do
  local reply = redis.call(
    'XREADGROUP', 'GROUP', '@group@', ARGV[2], 'COUNT', 1, 'STREAMS', ARGV[i], '>'
  )
  if reply then
    return reply
  end
end
return false
