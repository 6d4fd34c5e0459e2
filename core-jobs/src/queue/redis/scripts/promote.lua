-- Moves due delayed jobs to ready; a due grouped job starts when its group is idle and waits
-- behind it otherwise.
-- KEYS: delayed, ready, delayed-grouped, groups, grouped-waiting.
-- ARGV: limit, group list key prefix.
-- Returns {moved, ms until the next due job or -1, grouped entries whose id or group could not
-- be read (released to ready on their own)}.
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
  redis.call('RPUSH', KEYS[2], unpack(due))
end
local dueg = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, ARGV[1])
local released = 0
for _, v in ipairs(dueg) do
  redis.call('ZREM', KEYS[3], v)
  local id, group, env = parse(v)
  if not id then
    released = released + 1
    redis.call('RPUSH', KEYS[2], env)
  elseif redis.call('HSETNX', KEYS[4], group, id) == 1 then
    redis.call('RPUSH', KEYS[2], env)
  else
    redis.call('RPUSH', ARGV[2] .. group, entry(id, group, env))
    redis.call('INCR', KEYS[5])
  end
end
local nxt = -1
if #due + #dueg >= tonumber(ARGV[1]) then nxt = 0 end
for _, k in ipairs({KEYS[1], KEYS[3]}) do
  local a = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  if #a > 0 then
    local d = tonumber(a[2]) - now
    if d < 0 then d = 0 end
    if nxt < 0 or d < nxt then nxt = d end
  end
end
return {#due + #dueg, nxt, released}
