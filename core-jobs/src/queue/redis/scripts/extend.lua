-- Extends the leases of running jobs and the worker's heartbeat.
-- KEYS: leases, workers. ARGV: lease ms, worker, envelopes...
-- Returns the 1-based positions (among the envelopes) of those no longer leased: a `ZADD XX`
-- of a missing member changes nothing, so each is checked with `ZSCORE`.
local deadline = now_ms() + tonumber(ARGV[1])
redis.call('ZADD', KEYS[2], deadline, ARGV[2])
local lost = {}
for i = 3, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], 'XX', deadline, ARGV[i])
  else
    lost[#lost + 1] = i - 2
  end
end
return lost
