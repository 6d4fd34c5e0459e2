local v = redis.call('GET', KEYS[1])
if v and not (ARGV[3] == '1' and v == ARGV[4]) then return {1, v} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, false} end
return {0, false}
