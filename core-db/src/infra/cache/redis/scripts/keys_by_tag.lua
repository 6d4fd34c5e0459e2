local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now))
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('SISMEMBER', ARGV[1] .. m, ARGV[3]) == 1 then
    if redis.call('EXISTS', ARGV[2] .. m) == 1 then out[#out + 1] = m end
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
return out
