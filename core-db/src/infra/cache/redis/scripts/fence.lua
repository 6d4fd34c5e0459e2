local out = {redis.call('GET', KEYS[1])}
for i = 3, #KEYS do
  local g = redis.call('GET', KEYS[i])
  if g then
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  else
    g = redis.call('INCR', KEYS[2])
    redis.call('SET', KEYS[i], g, 'PX', ARGV[1])
  end
  out[#out + 1] = tonumber(g)
end
return out
