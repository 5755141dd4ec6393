-- reserve.lua: take up to N jobs from the first non-empty queue, in priority order, and hold
-- them in that queue's reserved set until acknowledged or until their visibility deadline.
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
-- ARGV[4] how many jobs to take at most (>= 1), all from the same queue
-- Returns {} when every queue is empty, else a flat list: queue index (1-based), then
-- for each job taken: member, crash count.
--
-- Before taking, for every queue: due delayed jobs join the back of the line, and jobs whose
-- deadline passed return to the front (they are the oldest), their expiry counted in crashes
-- so that a job that kills its worker still uses up attempts.
-- Reading TIME and then writing needs effects replication: the default since Redis 5, asked for
-- explicitly for servers configured otherwise (a no-op on 7; absent from some emulators).
if redis.replicate_commands then redis.replicate_commands() end
local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local deadline = now + tonumber(ARGV[2])
local prefix = ARGV[3]
local limit = tonumber(ARGV[4])
local queues = #KEYS / 5
local MIGRATE = 100 -- bound the work of one call; the rest moves on the next call

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

for i = 0, queues - 1 do
  local ready, reserved, crashes = KEYS[i*5+1], KEYS[i*5+2], KEYS[i*5+5]
  local body = redis.call('RPOP', ready)
  if body then
    local out = {i + 1}
    local n = 0
    while body do
      n = n + 1
      local member = prefix .. '.' .. n .. '|' .. body
      redis.call('ZADD', reserved, deadline, member)
      out[#out+1] = member
      out[#out+1] = tonumber(redis.call('HGET', crashes, body) or '0')
      if n >= limit then break end
      body = redis.call('RPOP', ready)
    end
    return out
  end
end

-- Every queue is empty: any wake-up token left is stale, so drop them; a producer that
-- pushes after this adds a fresh one.
for i = 0, queues - 1 do redis.call('DEL', KEYS[i*5+4]) end
return {}
