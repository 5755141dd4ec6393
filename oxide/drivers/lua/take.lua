-- take.lua: the busy worker's take. Acknowledge the jobs it finished, then take up to N jobs from
-- the first non-empty queue, in priority order, into that queue's reserved set: what reserve.lua
-- does, without its periodic step (due delayed and expired jobs, stale wake-up tokens), so it
-- names only the keys a take touches. The worker calls reserve.lua instead every
-- MIGRATE_EVERY_SECS, and whenever this script finds every queue empty.
--
-- KEYS: three per queue, queues in priority order:
--   ready    oxide:queue:<q>            LIST   job bodies; producers LPUSH, we take from the tail
--   reserved oxide:queue:<q>:reserved   ZSET   "<token>|<body>" scored by deadline (ms)
--   crashes  oxide:queue:<q>:crashes    HASH   body -> how many reservations of it expired
-- ARGV[1] visibility timeout in ms
-- ARGV[2] how many jobs to take at most (>= 0), all from the same queue; 0 only acknowledges
-- ARGV[3] now in ms, or "" to use the server's clock (so worker clocks never skew deadlines)
-- ARGV[4] token prefix, unique to this call (no "|" in it)
-- ARGV[5..] pairs: queue index (1-based, into KEYS' queues), member of a job to acknowledge; the
--   index is negative when the job had been lost before (taken with a crash count above 0)
-- Returns what reserve.lua returns: a string with one character per acknowledgement, "1" if the
-- reservation was still held, "0" if it had expired; then, if a job was taken, the queue index,
-- then for each job taken: member, crash count.
--
-- A job's crash count is dropped with its acknowledgement only if the reservation was still held
-- (after an expiry it belongs to the job's next holder) and only if the job was taken with one: a
-- job taken with none can gain none while we hold it, since only its expiry counts one.
-- Reading TIME and then writing needs effects replication: the default since Redis 5, asked for
-- explicitly for servers configured otherwise (a no-op on 7; absent from some emulators).
if redis.replicate_commands then redis.replicate_commands() end

local acked = {}
for a = 5, #ARGV, 2 do
  local q = tonumber(ARGV[a])
  local member = ARGV[a + 1]
  local held = redis.call('ZREM', KEYS[math.abs(q) * 3 - 1], member)
  acked[#acked + 1] = held
  if held == 1 and q < 0 then
    redis.call('HDEL', KEYS[-q * 3], string.sub(member, string.find(member, '|', 1, true) + 1))
  end
end
local out = {table.concat(acked)}
local limit = tonumber(ARGV[2])
if limit < 1 then return out end

for i = 0, #KEYS / 3 - 1 do
  local ready, reserved, crashes = KEYS[i*3+1], KEYS[i*3+2], KEYS[i*3+3]
  local bodies
  if limit == 1 then
    local body = redis.call('RPOP', ready)
    if body then bodies = {body} end
  else
    bodies = redis.call('RPOP', ready, limit) -- nil (false) when the list is empty
  end
  if bodies then
    local now = tonumber(ARGV[3])
    if now == nil then
      local t = redis.call('TIME')
      now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    local deadline = now + tonumber(ARGV[1])
    out[2] = i + 1
    -- One job: read its count directly. Several: only if the queue has any count at all.
    local lost = #bodies == 1 or redis.call('HLEN', crashes) > 0
    local scored = {}
    for n, body in ipairs(bodies) do
      local member = ARGV[4] .. '.' .. n .. '|' .. body
      scored[#scored+1] = deadline
      scored[#scored+1] = member
      out[#out+1] = member
      out[#out+1] = lost and tonumber(redis.call('HGET', crashes, body) or '0') or 0
    end
    redis.call('ZADD', reserved, unpack(scored))
    return out
  end
end
return out
