local v = redis.call('GET', KEYS[1])
if v and not (ARGV[3] == '1' and v == ARGV[4]) then return {1, v} end
local out = {0, v}
for i = 4, #KEYS do
  local g = redis.call('GET', KEYS[i])
  if g then
    redis.call('PEXPIRE', KEYS[i], ARGV[5])
  else
    g = redis.call('INCR', KEYS[3])
    redis.call('SET', KEYS[i], g, 'PX', ARGV[5])
  end
  out[#out + 1] = tonumber(g)
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then out[1] = 2 end
return out
