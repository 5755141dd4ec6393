-- release.lua: give a reserved job back for another attempt, now or after a delay.
-- KEYS[1] reserved (ZSET), KEYS[2] crashes (HASH), KEYS[3] ready (LIST), KEYS[4] delayed (ZSET), KEYS[5] notify (LIST)
-- ARGV[1] member "<token>|<body>", ARGV[2] the body to queue (its attempts raised by the caller),
-- ARGV[3] now in ms or "" for the server's clock, ARGV[4] delay in ms (0: at once, to the back of the line),
-- ARGV[5] a token unique to this call, for the delayed member
-- Returns 1, or 0 without queuing anything if the reservation had expired: the job is already
-- back in its queue, and queuing it again would run it twice.
-- Reading TIME and then writing needs effects replication: the default since Redis 5, asked for
-- explicitly for servers configured otherwise (a no-op on 7; absent from some emulators).
if redis.replicate_commands then redis.replicate_commands() end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local old = string.sub(ARGV[1], string.find(ARGV[1], '|', 1, true) + 1)
redis.call('HDEL', KEYS[2], old)
local delay = tonumber(ARGV[4])
if delay <= 0 then
  redis.call('LPUSH', KEYS[3], ARGV[2])
  redis.call('LPUSH', KEYS[5], '1')
  redis.call('LTRIM', KEYS[5], 0, 999)
  return 1
end
local now = tonumber(ARGV[3])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
redis.call('ZADD', KEYS[4], now + delay, ARGV[5] .. '|' .. ARGV[2])
return 1
