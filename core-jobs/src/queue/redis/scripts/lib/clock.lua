-- The Redis server's clock in Unix milliseconds: leases and delays follow it, not the workers'.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
