-- give_back.lua: return jobs that a worker reserved but never started to the FRONT of their
-- queue, without counting an attempt: the jobs of a prefetched batch still in hand when the
-- worker stops. They go back in the order they were taken, so the queue is as if never touched.
-- KEYS[1] reserved (ZSET), KEYS[2] ready (LIST), KEYS[3] notify (LIST)
-- ARGV: members "<token>|<body>", in the order they were taken (oldest first)
-- Returns how many went back. A member whose reservation had expired is skipped: the reserve
-- script already put it back (and counted its expiry), so queuing it again would run it twice.
local back = 0
for k = #ARGV, 1, -1 do
  if redis.call('ZREM', KEYS[1], ARGV[k]) == 1 then
    -- Newest first onto the tail, so that the oldest ends up at the very front.
    redis.call('RPUSH', KEYS[2], string.sub(ARGV[k], string.find(ARGV[k], '|', 1, true) + 1))
    redis.call('LPUSH', KEYS[3], '1')
    back = back + 1
  end
end
if back > 0 then redis.call('LTRIM', KEYS[3], 0, 999) end
return back
