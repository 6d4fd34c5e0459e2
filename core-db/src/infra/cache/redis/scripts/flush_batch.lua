local cp, kp, tp, index = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local n = #cp
local tagged = redis.call('EXISTS', index) == 1
local members = {}
for i, key in ipairs(KEYS) do
  local m = string.sub(key, n + 1)
  members[i] = m
  if tagged then
    local kk = kp .. m
    local tags = redis.call('SMEMBERS', kk)
    if #tags > 0 then
      for _, t in ipairs(tags) do redis.call('ZREM', tp .. t, m) end
      redis.call('DEL', kk)
    end
  end
end
local removed = redis.call('UNLINK', unpack(KEYS))
if ARGV[5] then
  redis.call('PUBLISH', ARGV[5], cjson.encode({o = ARGV[6], k = members}))
end
return removed
