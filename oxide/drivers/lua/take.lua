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
-- ARGV[3] the reservations' deadline in ms: now on the server's clock, as the caller keeps it
--   (reservations.py), plus the visibility timeout; or "" to read the server's clock here
-- ARGV[4] token prefix, unique to this call (no "|" in it)
-- ARGV[5..] pairs: queue index (1-based, into KEYS' queues), member of a job to acknowledge; the
--   index is negative when the job had been lost before (taken with a crash count above 0)
-- Returns what reserve.lua returns: a string with one character per acknowledgement, "1" if the
-- reservation was still held, "0" if it had expired; then, if a job was taken, the queue index,
-- then for each job taken: member, crash count.
--
-- Written for the server's time per call, which is most of a busy worker's round trip: one job
-- (the default) is taken without building a table, and one acknowledgement (a busy worker's) without
-- concatenating flags; each table a call builds is work for Lua's allocator and collector.
--
-- A job's crash count is dropped with its acknowledgement only if the reservation was still held
-- (after an expiry it belongs to the job's next holder) and only if the job was taken with one: a
-- job taken with none can gain none while we hold it, since only its expiry counts one.
-- Reading TIME and then writing needs effects replication: the default since Redis 5, asked for
-- explicitly for servers configured otherwise (a no-op on 7; absent from some emulators).
if redis.replicate_commands then redis.replicate_commands() end

local function ack(a)
  local q = tonumber(ARGV[a])
  local member = ARGV[a + 1]
  local held = redis.call('ZREM', KEYS[math.abs(q) * 3 - 1], member)
  if held == 1 and q < 0 then
    redis.call('HDEL', KEYS[-q * 3], string.sub(member, string.find(member, '|', 1, true) + 1))
  end
  return held
end

local out
if #ARGV == 6 then -- one acknowledgement
  out = {ack(5) == 1 and '1' or '0'}
else
  local acked = {}
  for a = 5, #ARGV, 2 do acked[#acked + 1] = ack(a) end
  out = {table.concat(acked)}
end
local limit = tonumber(ARGV[2])
if limit < 1 then return out end

-- Given by the caller, the deadline goes to ZADD as the string it came as: worked out here, it is
-- a call to TIME and a number that ZADD's argument must be formatted from, a sixth of the call.
local function deadline()
  if ARGV[3] ~= '' then return ARGV[3] end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
end

for i = 1, #KEYS, 3 do
  local ready, reserved, crashes = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  if limit == 1 then
    local body = redis.call('RPOP', ready)
    if body then
      local member = ARGV[4] .. '.1|' .. body
      redis.call('ZADD', reserved, deadline(), member)
      out[2] = (i + 2) / 3
      out[3] = member
      out[4] = tonumber(redis.call('HGET', crashes, body) or '0')
      return out
    end
  else
    local bodies = redis.call('RPOP', ready, limit) -- nil (false) when the list is empty
    if bodies then
      local at = deadline()
      out[2] = (i + 2) / 3
      -- Several jobs: read their counts only if the queue has any count at all.
      local lost = redis.call('HLEN', crashes) > 0
      local scored = {}
      for n, body in ipairs(bodies) do
        local member = ARGV[4] .. '.' .. n .. '|' .. body
        scored[#scored+1] = at
        scored[#scored+1] = member
        out[#out+1] = member
        out[#out+1] = lost and tonumber(redis.call('HGET', crashes, body) or '0') or 0
      end
      redis.call('ZADD', reserved, unpack(scored))
      return out
    end
  end
end
return out
