-- Ends a lease; keeps a failure record `failed_jobs` could not take; for a grouped job that is
-- its group's running one, starts the group's next job (or frees the group).
-- KEYS: leases, ready, groups, group list, pending failures, grouped-waiting.
-- ARGV: envelope, group ('' for none), id, failure record ('' for none).
-- Returns {1 (0: the lease was gone), entries of the group list whose id could not be read
-- (released to ready on their own)}.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return {0, 0} end
if ARGV[4] ~= '' then redis.call('RPUSH', KEYS[5], ARGV[4]) end
local released = 0
if ARGV[2] ~= '' and redis.call('HGET', KEYS[3], ARGV[2]) == ARGV[3] then
  local started = false
  while not started do
    local nxt = redis.call('LPOP', KEYS[4])
    if not nxt then break end
    dec(KEYS[6])
    local id, _, env = parse(nxt)
    if id then
      redis.call('HSET', KEYS[3], ARGV[2], id)
      started = true
    else
      released = released + 1
    end
    redis.call('RPUSH', KEYS[2], env)
  end
  if not started then redis.call('HDEL', KEYS[3], ARGV[2]) end
end
return {1, released}
