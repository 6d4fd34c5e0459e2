local v = false
if ARGV[3] == '1' then v = redis.call('GET', KEYS[1]) end
for _, t in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('ZREM', ARGV[2] .. t, ARGV[1])
end
redis.call('DEL', KEYS[1], KEYS[2])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('SET', KEYS[3], redis.call('INCR', KEYS[4]), 'KEEPTTL')
end
if ARGV[4] then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return v
