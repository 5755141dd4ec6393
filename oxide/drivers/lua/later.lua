-- later.lua: schedule jobs to become ready after a delay.
-- KEYS[1] delayed (ZSET of "<token>|<body>" scored by the time it becomes ready, ms)
-- ARGV[1] now in ms or "" for the server's clock, ARGV[2] delay in ms,
-- ARGV[3] token prefix unique to this call, ARGV[4..] job bodies
-- The token keeps two identical bodies two members, so neither is lost.
-- Reading TIME and then writing needs effects replication: the default since Redis 5, asked for
-- explicitly for servers configured otherwise (a no-op on 7; absent from some emulators).
if redis.replicate_commands then redis.replicate_commands() end
local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local at = now + tonumber(ARGV[2])
for i = 4, #ARGV do redis.call('ZADD', KEYS[1], at, ARGV[3] .. '.' .. (i - 3) .. '|' .. ARGV[i]) end
return #ARGV - 3
