--[[
  Backends and servers (key srv) and the balancing of src/core/state/balance.ts, rule for rule:
  leastconn, roundrobin (smooth weighted), first.
]]
--- @include "scopes"

local BK = {}

local function srvField(bname, sname, f) return bname .. '/' .. sname .. '\0' .. f end

-- The backend with its servers' runtime state, or nil when the spec has no such backend. cfg field
-- 'b<backend>' holds its spec as JSON.
local function backend(bname)
  local b = BK[bname]
  if b then return b end
  local raw = redis.call('HGET', K_CFG, 'b' .. bname)
  if not raw then return nil end
  local spec = cjson.decode(raw)
  local fields, names = {bname .. '\0last'}, {'backend:' .. bname}
  META[names[1]] = {kind = 'b', max = lim(spec.max), mq = lim(spec.maxqueue)}
  for i, s in ipairs(spec.servers) do
    fields[2 * i] = srvField(bname, s.name, 'up')
    fields[2 * i + 1] = srvField(bname, s.name, 'cw')
    names[i + 1] = 'server:' .. bname .. '/' .. s.name
    META[names[i + 1]] = {kind = 's', max = lim(s.max), mq = lim(s.maxqueue)}
  end
  local state = hmget(K_SRV, fields)
  prepare(names, false)
  b = {name = bname, balance = spec.balance, sc = scope(names[1]), servers = {}, last = tonumber(state[1]) or -1, dirty = false}
  for i, s in ipairs(spec.servers) do
    local up = state[2 * i]
    if up then up = (up == '1') else up = (s.down ~= true) end
    b.servers[i] = {name = s.name, idx = i, weight = s.weight, up = up, cw = tonumber(state[2 * i + 1]) or 0, sc = scope(names[i + 1])}
  end
  BK[bname] = b
  return b
end

local function eligible(sv) return sv.up and room(sv.sc) end

local function choose(b)
  local n = #b.servers
  if b.balance == 'first' then
    for _, sv in ipairs(b.servers) do
      if eligible(sv) then return sv end
    end
    return nil
  elseif b.balance == 'leastconn' then
    -- Fewest holders; among equals, the first at or after the one past the last pick.
    local best
    for k = 1, n do
      local sv = b.servers[((b.last + k + n) % n) + 1]
      if eligible(sv) and (best == nil or sv.sc.in_use < best.sc.in_use) then best = sv end
    end
    return best
  end
  -- roundrobin: smooth weighted round-robin over the eligible servers.
  local best, bestWeight = nil, -INF
  for _, sv in ipairs(b.servers) do
    if eligible(sv) then
      local w = sv.cw + sv.weight
      if w > bestWeight then best, bestWeight = sv, w end
    end
  end
  return best
end

local function commit(b, chosen)
  b.last = chosen.idx - 1
  b.dirty = true
  if b.balance ~= 'roundrobin' then return end
  local total = 0
  for _, sv in ipairs(b.servers) do
    if eligible(sv) or sv == chosen then
      sv.cw = sv.cw + sv.weight
      total = total + sv.weight
    end
  end
  chosen.cw = chosen.cw - total
end
