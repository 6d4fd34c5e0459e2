-- Moves jobs whose lease expired back to the front of ready, and the processing lists of
-- workers whose heartbeat expired.
-- KEYS: leases, ready, workers. ARGV: limit, processing key prefix, claimed key prefix.
-- Returns how many jobs were moved.
local now = now_ms()
local exp = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])
local n = #exp
if n > 0 then
  redis.call('ZREM', KEYS[1], unpack(exp))
  redis.call('LPUSH', KEYS[2], unpack(exp))
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 16)
for _, w in ipairs(dead) do
  local k = ARGV[2] .. w
  while redis.call('LMOVE', k, KEYS[2], 'RIGHT', 'LEFT') do n = n + 1 end
  redis.call('DEL', ARGV[3] .. w)
  redis.call('ZREM', KEYS[3], w)
end
return n
