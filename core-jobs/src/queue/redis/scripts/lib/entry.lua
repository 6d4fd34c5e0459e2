-- Entries of `group:{id}` lists and of `delayed-grouped`: "{#id}:{id}{#group}:{group}{envelope}",
-- so that a script reads a grouped job's id and group without decoding its JSON (a script's
-- earlier writes stay applied when a later call fails, so a decode error half-way would lose
-- the job). Entries written before this format are bare envelopes: `parse` decodes those under
-- `pcall` and returns no id when it cannot, and the caller then releases the job to `ready` on
-- its own rather than lose it or block its group.
local function entry(id, group, env)
  return #id .. ':' .. id .. #group .. ':' .. group .. env
end

local function parse(v)
  local il, i = string.match(v, '^(%d+):()')
  if il then
    local id = string.sub(v, i, i + tonumber(il) - 1)
    local gl, j = string.match(v, '^(%d+):()', i + tonumber(il))
    if gl then
      return id, string.sub(v, j, j + tonumber(gl) - 1), string.sub(v, j + tonumber(gl))
    end
  end
  local ok, e = pcall(cjson.decode, v)
  if ok and type(e) == 'table' and type(e.id) == 'string' and type(e.group) == 'string' then
    return e.id, e.group, v
  end
  return nil, nil, v
end

-- Decrements a counter, never below 0.
local function dec(k)
  if redis.call('DECR', k) < 0 then redis.call('SET', k, 0) end
end
