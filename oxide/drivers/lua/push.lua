-- push.lua: add jobs to the back of a queue and wake one idle worker per job.
-- KEYS[1] ready (LIST), KEYS[2] notify (LIST)
-- ARGV: job bodies, oldest first
-- Tokens are capped: they only wake sleepers, and a queue nobody reserves from must not grow them forever.
for _, body in ipairs(ARGV) do
  redis.call('LPUSH', KEYS[1], body)
  redis.call('LPUSH', KEYS[2], '1')
end
redis.call('LTRIM', KEYS[2], 0, 999)
return #ARGV
