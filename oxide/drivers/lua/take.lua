-- take.lua: the busy worker's take. Acknowledge the jobs it finished, then take up to N jobs from
-- the first non-empty queue, in priority order, into that queue's reserved set: what reserve.lua
-- does, without its periodic step (due delayed and expired jobs, stale wake-up tokens), so it
-- names only the keys a take touches. The worker calls reserve.lua instead every
-- MIGRATE_EVERY_SECS, and whenever this script finds every queue empty.
--
-- KEYS: three per queue, in three runs of the queues in priority order (n = #KEYS / 3):
--   KEYS[i]          ready    oxide:queue:<q>            LIST   job bodies; producers LPUSH, we take from the tail
--   KEYS[n + i]      reserved oxide:queue:<q>:reserved   ZSET   "<token>|<body>" scored by deadline (ms)
--   KEYS[2 * n + i]  crashes  oxide:queue:<q>:crashes    HASH   body -> how many reservations of it expired
-- ARGV[1] how many jobs to take at most (>= 0), all from the same queue; 0 only acknowledges
-- ARGV[2] the reservations' deadline in ms: now on the server's clock, as the caller follows it
--   (reservations.py), plus the visibility timeout. A caller that cannot follow the clock of the
--   server holding the keys (a cluster's) calls reserve.lua, which reads TIME.
-- ARGV[3] token prefix, unique to this call (no "|" in it)
-- ARGV[4..] pairs: queue index (1-based, into the queues), member of a job to acknowledge; the
--   index is negative when the job had been lost before (taken with a crash count above 0)
-- The busy call, one acknowledgement and one job, leaves out ARGV[1]: exactly four arguments,
-- the deadline, the token prefix, the index and the member.
-- Returns the flags: one character per acknowledgement, "1" if the reservation was still held,
-- "0" if it had expired. One job taken (the default): one string, the flags, the ready list it
-- came from, its crash count and its member, separated by spaces (no key holds one):
-- "<flags> <ready key> <count> <member>". Several jobs: a table of the flags, the queue index,
-- then for each job taken: member, crash count. None: {flags}.
--
-- Written for the server's time per call, which is most of a busy worker's round trip (counted
-- with bench/instructions.py): every key and argument the call brings is a Lua string put into a
-- table grown for the call, every table, closure and number turned into text is work for Lua's
-- allocator and collector, and every redis.call goes through the server's command path. So the
-- call brings no constant the script can do without, no function is made per call, and one job
-- (the default) is answered with one string made of strings the script holds.
--
-- A job's crash count is dropped with its acknowledgement only if the reservation was still held
-- (after an expiry it belongs to the job's next holder) and only if the job was taken with one: a
-- job taken with none can gain none while we hold it, since only its expiry counts one.
local n = #KEYS / 3
-- Four arguments: the busy call (one acknowledgement, one job), without the count of jobs to take,
-- as every argument costs the call a string and the table of ARGV a slot.
local busy = #ARGV == 4
local deadline, token = ARGV[busy and 1 or 2], ARGV[busy and 2 or 3]

local flags = ''
for a = busy and 3 or 4, #ARGV, 2 do
  local q = tonumber(ARGV[a])
  local member = ARGV[a + 1]
  if redis.call('ZREM', KEYS[n + math.abs(q)], member) == 1 then
    flags = flags .. '1'
    if q < 0 then
      redis.call('HDEL', KEYS[2 * n - q], string.sub(member, string.find(member, '|', 1, true) + 1))
    end
  else
    flags = flags .. '0'
  end
end

if busy or ARGV[1] == '1' then -- one job, the default
  for i = 1, n do
    local body = redis.call('RPOP', KEYS[i])
    if body then
      local member = token .. '.1|' .. body
      redis.call('ZADD', KEYS[n + i], deadline, member)
      return flags .. ' ' .. KEYS[i] .. ' ' .. (redis.call('HGET', KEYS[2 * n + i], body) or '0') .. ' ' .. member
    end
  end
  return {flags}
end

local limit = tonumber(ARGV[1])
if limit < 1 then return {flags} end
for i = 1, n do
  local bodies = redis.call('RPOP', KEYS[i], limit) -- nil (false) when the list is empty
  if bodies then
    local crashes = KEYS[2 * n + i]
    local out = {flags, i}
    -- Several jobs: read their counts only if the queue has any count at all.
    local lost = redis.call('HLEN', crashes) > 0
    local scored = {}
    for j, body in ipairs(bodies) do
      local member = token .. '.' .. j .. '|' .. body
      scored[#scored + 1] = deadline
      scored[#scored + 1] = member
      out[#out + 1] = member
      out[#out + 1] = lost and tonumber(redis.call('HGET', crashes, body) or '0') or 0
    end
    redis.call('ZADD', KEYS[n + i], unpack(scored))
    return out
  end
end
return {flags}
