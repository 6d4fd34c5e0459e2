-- Ends a lease and schedules the job's next attempt, in one step.
-- KEYS: leases, delayed. ARGV: old envelope, new envelope, delay ms.
-- Returns 1, or 0 when the lease was already gone.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], now_ms() + tonumber(ARGV[3]), ARGV[2])
return 1
