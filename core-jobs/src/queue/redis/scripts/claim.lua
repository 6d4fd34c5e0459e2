-- Leases up to `max` jobs: first those of this worker's last claim, if its token is among the
-- lost ones (its reply never came) and they are still leased; then what this worker's
-- processing list holds (what a blocking claim just moved, or one whose reply was lost left
-- behind); then ready jobs. `claimed` keeps `token` and the envelopes leased, for the next
-- claim to take over should this reply be lost too.
-- KEYS: processing, ready, leases, claimed. ARGV: max, lease_ms, token, lost tokens...
-- Returns {jobs taken over from a lost claim or the processing list, the envelopes}.
local max = tonumber(ARGV[1])
local items = {}
local head = redis.call('LINDEX', KEYS[4], 0)
local lost = false
for i = 4, #ARGV do if ARGV[i] == head then lost = true end end
if lost then
  for _, v in ipairs(redis.call('LRANGE', KEYS[4], 1, -1)) do
    if redis.call('ZSCORE', KEYS[3], v) then
      if #items < max then items[#items + 1] = v
      else redis.call('ZREM', KEYS[3], v); redis.call('LPUSH', KEYS[2], v) end
    end
  end
end
redis.call('DEL', KEYS[4])
if #items < max then
  local moved = redis.call('LPOP', KEYS[1], max - #items)
  if moved then for _, v in ipairs(moved) do items[#items + 1] = v end end
end
local adopted = #items
if #items < max then
  local more = redis.call('LPOP', KEYS[2], max - #items)
  if more then for _, v in ipairs(more) do items[#items + 1] = v end end
end
if #items == 0 then return {0, items} end
local deadline = now_ms() + tonumber(ARGV[2])
local args = {}
for i = 1, #items do args[2 * i - 1] = deadline; args[2 * i] = items[i] end
redis.call('ZADD', KEYS[3], unpack(args))
redis.call('RPUSH', KEYS[4], ARGV[3], unpack(items))
return {adopted, items}
