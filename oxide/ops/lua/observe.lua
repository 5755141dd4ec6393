-- observe.lua: date the jobs of one queue, for the age of the job at the front of its line, with
-- no help from producers (a Rust app or redis-cli LPUSHes plain JSON that carries no time).
--
-- An observer (a worker's heartbeat, about once a second; queue:monitor, the metrics exporter,
-- the dashboard) marks the newest job of the list with the time it first saw it. Lists are FIFO,
-- so every job older than a marked job is still ahead of it: the job at the front joined the
-- queue no later than the oldest mark whose job is still in the list, and after the mark before
-- that one (its job was taken). The age reported is now minus that oldest surviving mark: a lower
-- bound, exact to the observers' interval. docs/operations.md explains what it measures.
--
-- KEYS[1] ready  oxide:queue:<q>        LIST  job bodies, newest at the left (read only here)
-- KEYS[2] marks  oxide:queue:<q>:marks  LIST  "<ms>|<body>", newest at the left
-- ARGV[1] now in ms, or "" for the server's clock
-- ARGV[2] the largest body marked, in bytes (a larger newest job is not marked this time)
-- ARGV[3] the most marks kept; past it one mark from the middle goes, so old backlogs keep a date
-- ARGV[4] "1" to work out the age (a read), "0" only to mark (a heartbeat: cheap)
-- Returns {ready count, age of the front job in ms, or -1 when nothing is ready or it is unknown}.
-- Cost: a mark is O(1). An age is a binary search over the marks, each probe an LPOS from the
-- newest end: O(jobs pushed after the probed mark), all of the list for a mark already taken.
if redis.replicate_commands then redis.replicate_commands() end
local ready, marks = KEYS[1], KEYS[2]
local n = redis.call('LLEN', ready)
if n == 0 then
  redis.call('DEL', marks)
  return {0, -1}
end
local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split(entry)
  local bar = string.find(entry, '|', 1, true)
  return tonumber(string.sub(entry, 1, bar - 1)), string.sub(entry, bar + 1)
end

-- Mark the newest job, at most once a second and only when it changed since the last mark.
local newest = redis.call('LINDEX', ready, 0)
local last = redis.call('LINDEX', marks, 0)
local fresh = #newest <= tonumber(ARGV[2])
local last_at = nil
if last then
  local body
  last_at, body = split(last)
  fresh = fresh and body ~= newest and now - last_at >= 1000
end
if fresh then
  local count = redis.call('LPUSH', marks, now .. '|' .. newest)
  if count > tonumber(ARGV[3]) then
    redis.call('LSET', marks, math.floor(count / 2), '')
    redis.call('LREM', marks, 1, '')
  end
end
if ARGV[4] ~= '1' then return {n, -1} end

-- Marks oldest first are taken first: find the oldest whose job is still in the list.
local count = redis.call('LLEN', marks)
local lo, hi = 0, count - 1   -- indexes from the left (newest); the answer is the largest present
local found = -1
while lo <= hi do
  local mid = math.floor((lo + hi) / 2)
  local _, body = split(redis.call('LINDEX', marks, mid))
  if redis.call('LPOS', ready, body) then
    found = mid
    lo = mid + 1
  else
    hi = mid - 1
  end
end
if found < 0 then
  -- Every marked job was taken: the front job came after the newest mark. Less than a second
  -- ago, that is as good as an age of 0; longer ago (its body too large to mark), unknown.
  redis.call('DEL', marks)
  if last_at and now - last_at < 1000 then return {n, 0} end
  return {n, -1}
end
if found < count - 1 then redis.call('LTRIM', marks, 0, found) end
local at = split(redis.call('LINDEX', marks, found))
return {n, math.max(0, now - at)}
