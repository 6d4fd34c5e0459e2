-- Puts back a worker's processing list and the jobs of a claim whose reply never came, and
-- keeps its heartbeat a little longer.
-- KEYS: processing, ready, workers, claimed, leases.
-- ARGV: worker, ms until its heartbeat expires, lost claim tokens...
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do end
local head = redis.call('LINDEX', KEYS[4], 0)
local lost = false
for i = 3, #ARGV do if ARGV[i] == head then lost = true end end
if lost then
  for _, v in ipairs(redis.call('LRANGE', KEYS[4], 1, -1)) do
    if redis.call('ZREM', KEYS[5], v) == 1 then redis.call('LPUSH', KEYS[2], v) end
  end
end
redis.call('DEL', KEYS[4])
redis.call('ZADD', KEYS[3], now_ms() + tonumber(ARGV[2]), ARGV[1])
return 1
