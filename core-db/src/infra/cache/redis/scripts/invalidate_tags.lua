local tp, kp, cp = ARGV[1], ARGV[2], ARGV[3]
local removed, seen = {}, {}
for i = 7, #ARGV do
  local tag = ARGV[i]
  local gk = ARGV[6] .. tag
  if redis.call('EXISTS', gk) == 1 then
    redis.call('SET', gk, redis.call('INCR', KEYS[2]), 'KEEPTTL')
  end
  local tk = tp .. tag
  for _, m in ipairs(redis.call('ZRANGE', tk, 0, -1)) do
    local kk = kp .. m
    if redis.call('SISMEMBER', kk, tag) == 1 then
      for _, other in ipairs(redis.call('SMEMBERS', kk)) do
        if other ~= tag then redis.call('ZREM', tp .. other, m) end
      end
      redis.call('DEL', kk)
      if redis.call('UNLINK', cp .. m) == 1 and not seen[m] then
        seen[m] = true
        removed[#removed + 1] = m
      end
    end
  end
  redis.call('DEL', tk)
  redis.call('ZREM', KEYS[1], tag)
end
if ARGV[4] ~= '' and #removed > 0 then
  redis.call('PUBLISH', ARGV[4], cjson.encode({o = ARGV[5], k = removed}))
end
return removed
