-- promote.lua: move due delayed jobs to the back of their queues (used when reservations are off;
-- reserve.lua does the same itself).
-- KEYS: per queue, two keys: ready (LIST), delayed (ZSET of "<token>|<body>" scored by due time, ms)
-- ARGV[1] now in ms or "" for the server's clock
-- Returns how many jobs moved.
-- Reading TIME and then writing needs effects replication: the default since Redis 5, asked for
-- explicitly for servers configured otherwise (a no-op on 7; absent from some emulators).
if redis.replicate_commands then redis.replicate_commands() end
local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local moved = 0
for i = 1, #KEYS, 2 do
  local due = redis.call('ZRANGEBYSCORE', KEYS[i+1], '-inf', now, 'LIMIT', 0, 100)
  if #due > 0 then
    redis.call('ZREM', KEYS[i+1], unpack(due))
    for _, member in ipairs(due) do
      redis.call('LPUSH', KEYS[i], string.sub(member, string.find(member, '|', 1, true) + 1))
    end
    moved = moved + #due
  end
end
return moved
