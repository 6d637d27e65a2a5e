-- ARGV: prefix, kind, channel, body, capacity, expiry ms, hold ms, '1' to
-- count the message in the stats here ('0': an event loop of the sender
-- counts it soon, in a batch, off the hot path).
return push(ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]),
            now_ms(), tonumber(ARGV[7]), ARGV[8] == '1')
