-- extend.lua: a live worker still runs this job: push its visibility deadline forward.
-- KEYS[1] reserved (ZSET)
-- ARGV[1] member, ARGV[2] now in ms or "" for the server's clock, ARGV[3] visibility timeout in ms
-- Returns 1, or 0 if the reservation had already expired (it is not brought back to life).
-- Reading TIME and then writing needs effects replication: the default since Redis 5, asked for
-- explicitly for servers configured otherwise (a no-op on 7; absent from some emulators).
if redis.replicate_commands then redis.replicate_commands() end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local now = tonumber(ARGV[2])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
