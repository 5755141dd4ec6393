-- ack.lua: a reserved job is done (ran, or is recorded in failed_jobs): forget it.
-- KEYS[1] reserved (ZSET), KEYS[2] crashes (HASH)
-- ARGV[1] member "<token>|<body>"
-- Returns 1 if we still held the reservation, 0 if it had expired (someone may run it again).
-- The crash count goes only with a reservation we held: after an expiry it belongs to the job's
-- next holder, and wiping it would let a job that keeps killing workers run past its tries.
local held = redis.call('ZREM', KEYS[1], ARGV[1])
if held == 1 then
  local body = string.sub(ARGV[1], string.find(ARGV[1], '|', 1, true) + 1)
  redis.call('HDEL', KEYS[2], body)
end
return held
