-- reserve.lua: acknowledge the jobs a worker finished, then take up to N jobs from the first
-- non-empty queue, in priority order, and hold them in that queue's reserved set until
-- acknowledged or until their visibility deadline. One call, so a busy worker pays one round
-- trip per job (per batch with a limit above 1).
--
-- KEYS: five per queue, queues in priority order:
--   ready    oxide:queue:<q>            LIST   job bodies; producers LPUSH, we take from the tail
--   reserved oxide:queue:<q>:reserved   ZSET   "<token>|<body>" scored by deadline (ms)
--   delayed  oxide:queue:<q>:delayed    ZSET   "<token>|<body>" scored by the time it becomes ready (ms)
--   notify   oxide:queue:<q>:notify     LIST   wake-up tokens an idle worker blocks on
--   crashes  oxide:queue:<q>:crashes    HASH   body -> how many reservations of it expired
-- ARGV[1] now in ms, or "" to use the server's clock (so worker clocks never skew deadlines)
-- ARGV[2] visibility timeout in ms
-- ARGV[3] token prefix, unique to this call (no "|" in it)
-- ARGV[4] how many jobs to take at most (>= 0), all from the same queue; 0 only acknowledges
-- ARGV[5] "1" to move due delayed and expired jobs first (see below), "0" to skip that this time
-- ARGV[6] "1" to pass a wake-up on: the caller was woken from its wait, and if the queue it took
--   from still holds jobs, another idle worker is woken for them (producers wake one only when a
--   queue goes from empty to not empty)
-- ARGV[7..] pairs: queue index (1-based, into KEYS' queues), member of a job to acknowledge; the
--   index is negative when the job had been lost before (its crash count is dropped with it, as
--   take.lua does)
-- Returns a flat list: first a string with one character per acknowledgement, "1" if the
-- reservation was still held, "0" if it had expired (as ack.lua returns); then, if a job was
-- taken, the queue index (1-based), then for each job taken: member, crash count.
--
-- Before taking, for every queue listed: due delayed jobs join the back of the line, and jobs whose
-- deadline passed return to the front (they are the oldest), their expiry counted in crashes
-- so that a job that kills its worker still uses up attempts. The work per call stays bounded
-- (MIGRATE per set) and independent of how many jobs wait. A busy worker asks for this
-- step only every so often (ARGV[5]; the driver's MIGRATE_EVERY_SECS): it is two commands per
-- queue, more than the take itself, and a deadline 90 s away is not missed by a fraction of a second.
-- Reading TIME and then writing needs effects replication: the default since Redis 5, asked for
-- explicitly for servers configured otherwise (a no-op on 7; absent from some emulators).
if redis.replicate_commands then redis.replicate_commands() end

local acked = {}
for a = 7, #ARGV, 2 do
  local q = tonumber(ARGV[a])
  local base = (math.abs(q) - 1) * 5
  local member = ARGV[a + 1]
  local held = redis.call('ZREM', KEYS[base + 2], member)
  acked[#acked + 1] = held
  if held == 1 and q < 0 then
    redis.call('HDEL', KEYS[base + 5], string.sub(member, string.find(member, '|', 1, true) + 1))
  end
end
local out = {table.concat(acked)}
local limit = tonumber(ARGV[4])
if limit < 1 then return out end

local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local deadline = now + tonumber(ARGV[2])
local prefix = ARGV[3]
local queues = #KEYS / 5
local MIGRATE = 100 -- bound the work of one call; the rest moves on the next call
local migrate = ARGV[5] == '1'

if migrate then
  for i = 0, queues - 1 do
    local ready, reserved, delayed, crashes = KEYS[i*5+1], KEYS[i*5+2], KEYS[i*5+3], KEYS[i*5+5]
    local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, MIGRATE)
    if #due > 0 then
      redis.call('ZREM', delayed, unpack(due))
      for _, member in ipairs(due) do
        redis.call('LPUSH', ready, string.sub(member, string.find(member, '|', 1, true) + 1))
      end
    end
    local expired = redis.call('ZRANGEBYSCORE', reserved, '-inf', now, 'LIMIT', 0, MIGRATE)
    if #expired > 0 then
      redis.call('ZREM', reserved, unpack(expired))
      -- Newest first, so that the oldest reservation ends up at the very front.
      for k = #expired, 1, -1 do
        local body = string.sub(expired[k], string.find(expired[k], '|', 1, true) + 1)
        redis.call('RPUSH', ready, body)
        redis.call('HINCRBY', crashes, body, 1)
      end
    end
  end
end

for i = 0, queues - 1 do
  local ready, reserved, crashes = KEYS[i*5+1], KEYS[i*5+2], KEYS[i*5+5]
  local bodies
  if limit == 1 then
    local body = redis.call('RPOP', ready)
    if body then bodies = {body} end
  else
    bodies = redis.call('RPOP', ready, limit) -- nil (false) when the list is empty
  end
  if bodies then
    out[2] = i + 1
    local lost = redis.call('HLEN', crashes) > 0
    local scored = {}
    for n, body in ipairs(bodies) do
      local member = prefix .. '.' .. n .. '|' .. body
      scored[#scored+1] = deadline
      scored[#scored+1] = member
      out[#out+1] = member
      out[#out+1] = lost and tonumber(redis.call('HGET', crashes, body) or '0') or 0
    end
    redis.call('ZADD', reserved, unpack(scored))
    if ARGV[6] == '1' and redis.call('LLEN', ready) > 0 then
      redis.call('LPUSH', KEYS[i*5+4], '1')
    end
    return out
  end
end

-- Every queue is empty: any wake-up token left is stale, so drop them; a producer that
-- pushes after this adds a fresh one.
for i = 0, queues - 1 do redis.call('DEL', KEYS[i*5+4]) end
return out
