local cur = redis.call('GET', KEYS[1])
if ARGV[8] == '1' then
  if cur ~= ARGV[9] then return 0 end
elseif cur then
  return 0
end
local n = #KEYS - 5
for i = 0, n do
  if redis.call('GET', KEYS[5 + i]) ~= ARGV[11 + i] then return 0 end
end
local ttl = tonumber(ARGV[2])
local mode = ARGV[7]
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
if mode == 'f' then
  if ttl > 0 then
    redis.call('SET', KEYS[4], ARGV[10], 'PX', ttl)
  else
    redis.call('SET', KEYS[4], ARGV[10])
  end
elseif mode == 't' then
  local member, tp = ARGV[3], ARGV[4]
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local cutoff = '(' .. string.format('%.0f', now)
  for _, old in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    redis.call('ZREM', tp .. old, member)
  end
  redis.call('DEL', KEYS[2])
  local score = '+inf'
  if ttl > 0 then score = string.format('%.0f', now + ttl) end
  for i = 1, n do
    local tag = ARGV[11 + n + i]
    local tk = tp .. tag
    redis.call('ZREMRANGEBYSCORE', tk, '-inf', cutoff)
    redis.call('ZADD', tk, score, member)
    redis.call('SADD', KEYS[2], tag)
    local top = redis.call('ZRANGE', tk, -1, -1, 'WITHSCORES')
    local max = tonumber(top[2])
    if max == nil or max == math.huge then
      redis.call('PERSIST', tk)
      redis.call('ZADD', KEYS[3], '+inf', tag)
    else
      local at = string.format('%.0f', max)
      redis.call('PEXPIREAT', tk, at)
      redis.call('ZADD', KEYS[3], at, tag)
    end
  end
  if ttl > 0 and n > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', cutoff)
end
if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return 1
