-- ARGV: prefix, group, body, expiry ms, hold ms. Returns how many got it.
--
-- Members that are process-specific channels (WebSocket reply channels,
-- the usual members) are sent to by process: one HMGET of their depths,
-- one RPUSH of their messages, one HSET of the new depths, the expiries and
-- stats once per process, where push() would cost eight commands for each
-- member. Other members go through push().
local key = prefix .. ':g:' .. ARGV[2]
local body = ARGV[3]
local expiry = tonumber(ARGV[4])
local hold = tonumber(ARGV[5])
local now = now_ms()
local stamp = ms(now)
local members = redis.call('HGETALL', key)
local sent = 0
local lapsed = {}
-- Process prefix "name!" -> {channels, capacities}, in the order first met.
local processes = {}
local order = {}

-- Run command with the fixed arguments, then args[first..last], in calls of
-- at most 1000 arguments (unpack() has a limit).
local function batched(command, fixed, args, step)
  local i = 1
  while i <= #args do
    local last = math.min(i + 1000 * step - 1, #args)
    local call = {command, fixed}
    for j = i, last do call[#call + 1] = args[j] end
    redis.call(unpack(call))
    i = last + 1
  end
end

for i = 1, #members, 2 do
  local channel, info = members[i], members[i + 1]
  local a = string.find(info, ':', 1, true)
  local b = string.find(info, ':', a + 1, true)
  if tonumber(string.sub(info, 1, a - 1)) <= now then
    lapsed[#lapsed + 1] = channel
  else
    local kind = string.sub(info, a + 1, b - 1)
    local capacity = tonumber(string.sub(info, b + 1))
    if kind == 'p' then
      local name = string.sub(channel, 1, string.find(channel, '!', 1, true))
      local process = processes[name]
      if not process then
        process = {channels = {}, capacities = {}}
        processes[name] = process
        order[#order + 1] = name
      end
      process.channels[#process.channels + 1] = channel
      process.capacities[#process.capacities + 1] = capacity
    else
      sent = sent + push(kind, channel, body, capacity, expiry, now, hold, true)
    end
  end
end
batched('HDEL', key, lapsed, 1)

local function read_depths(depths, channels)
  local found = {}
  local i = 1
  while i <= #channels do
    local last = math.min(i + 999, #channels)
    local call = {'HMGET', depths}
    for j = i, last do call[#call + 1] = channels[j] end
    for _, depth in ipairs(redis.call(unpack(call))) do
      found[#found + 1] = tonumber(depth or 0)
    end
    i = last + 1
  end
  return found
end

for _, name in ipairs(order) do
  local process = processes[name]
  local channels, capacities = process.channels, process.capacities
  local list = prefix .. ':p:' .. name
  local depths = prefix .. ':n:' .. name
  local found = read_depths(depths, channels)
  for j = 1, #channels do
    if found[j] >= capacities[j] then
      -- A full member: drop the expired messages at the head of the list
      -- once (push() does the same), then read the depths again.
      trim(list, now, expiry, depths, nil)
      found = read_depths(depths, channels)
      break
    end
  end
  local elements, fields = {}, {}
  local full = 0
  for j = 1, #channels do
    if found[j] >= capacities[j] then
      full = full + 1
    else
      elements[#elements + 1] = stamp .. ':' .. channels[j] .. ':' .. body
      fields[#fields + 1] = channels[j]
      fields[#fields + 1] = found[j] + 1
    end
  end
  if #elements > 0 then
    batched('RPUSH', list, elements, 1)
    batched('HSET', depths, fields, 2)
    redis.call('PEXPIRE', list, expiry)
    redis.call('PEXPIRE', depths, expiry)
    count(name, 's', #elements, now)
    sent = sent + #elements
  end
  if full > 0 then
    count(name, 'f', full, now)
  end
end
return sent
