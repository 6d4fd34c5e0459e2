local tp, kp, cp = ARGV[1], ARGV[2], ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cutoff = '(' .. string.format('%.0f', now)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
local out = {}
for _, tag in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local tk = tp .. tag
  redis.call('ZREMRANGEBYSCORE', tk, '-inf', cutoff)
  local live = false
  for _, m in ipairs(redis.call('ZRANGE', tk, 0, -1)) do
    if redis.call('SISMEMBER', kp .. m, tag) == 1 then
      if redis.call('EXISTS', cp .. m) == 1 then
        live = true
        break
      end
    else
      redis.call('ZREM', tk, m)
    end
  end
  if live then
    out[#out + 1] = tag
  elseif redis.call('ZCARD', tk) == 0 then
    redis.call('ZREM', KEYS[1], tag)
  end
end
return out
