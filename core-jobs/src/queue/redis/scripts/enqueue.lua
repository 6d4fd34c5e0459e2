-- Queues one job: now (a grouped job waits behind its group's running job), after a delay or
-- at a time; with a unique key, only if that key is free.
-- KEYS: ready, delayed, delayed-grouped, groups, group list, unique key, grouped-waiting.
-- ARGV: envelope, mode (now|in|at), ms, group ('' for none), id, unique ttl ms (0: none).
-- Returns 1, or 0 when the unique key was taken.
if ARGV[6] ~= '0' then
  if not redis.call('SET', KEYS[6], '1', 'NX', 'PX', ARGV[6]) then return 0 end
end
local grouped = ARGV[4] ~= ''
if ARGV[2] == 'now' then
  if grouped and redis.call('HSETNX', KEYS[4], ARGV[4], ARGV[5]) == 0 then
    redis.call('RPUSH', KEYS[5], entry(ARGV[5], ARGV[4], ARGV[1]))
    redis.call('INCR', KEYS[7])
  else
    redis.call('RPUSH', KEYS[1], ARGV[1])
  end
  return 1
end
local due = tonumber(ARGV[3])
if ARGV[2] == 'in' then due = now_ms() + due end
if grouped then redis.call('ZADD', KEYS[3], due, entry(ARGV[5], ARGV[4], ARGV[1]))
else redis.call('ZADD', KEYS[2], due, ARGV[1]) end
return 1
