--[[
  Tickets (keys queue, tickets, tdl) and GroupState#dispatch: grants queued tickets in order.
]]
--- @include "leases"
--- @include "outcomes"

local function loadTicket(id, raw)
  local t = cjson.decode(raw)
  t.id = id
  t.fx = {}
  prepare(t.s, true)
  for i, name in ipairs(t.s) do t.fx[i] = held(name) end
  if t.b then
    t.bk = backend(t.b)
    if t.bk and t.p then
      for _, sv in ipairs(t.bk.servers) do
        if sv.name == t.p then t.pn = sv end
      end
    end
  end
  return t
end

local function removeTicket(id)
  redis.call('ZREM', K_QUEUE, id)
  redis.call('HDEL', K_TICKETS, id)
  redis.call('ZREM', K_TDL, id)
end

-- GroupState#fit: ok, and the server to take (nil when the chain names no backend).
-- b, p: the backend and pinned server names requested; bk, pn: what the spec still has of them.
local function fit(fixed, b, bk, p, pn)
  for i = 1, #fixed do
    if not room(fixed[i]) then return false end
  end
  if p then
    if pn and pn.up then return true, pn end
    return false
  end
  if not b then return true, nil end
  if not bk then return false end
  local sv = choose(bk)
  if sv then return true, sv end
  return false
end

local function touches(t, opened)
  for _, s in ipairs(t.fx) do
    if opened[s.name] then return true end
  end
  if t.bk and not t.p then
    for _, sv in ipairs(t.bk.servers) do
      if opened[sv.sc.name] then return true end
    end
  end
  return false
end

local function allFull(opened)
  for _, s in pairs(opened) do
    if room(s) then return false end
  end
  return true
end

-- GroupState#dispatch: grants queued tickets in order. With opened (name -> scope), only tickets
-- that need a scope which just got room are tried; a ticket that does not fit is skipped. Tickets
-- are read a few at a time at first: usually the first one tried takes the slot. Nothing is
-- granted while the group is learning (rule 12): settle dispatches when the window ends.
local function dispatch(opened)
  if opened ~= nil and next(opened) == nil then return end
  if group().learn ~= 0 then return end
  local pos, batch = 0, 4
  while true do
    local ids = redis.call('ZRANGE', K_QUEUE, pos, pos + batch - 1)
    if #ids == 0 then return end
    local raws = redis.call('HMGET', K_TICKETS, unpack(ids))
    for i, id in ipairs(ids) do
      if not raws[i] then
        removeTicket(id)
      else
        local t = loadTicket(id, raws[i])
        local ok, sv = false, nil
        if opened == nil or touches(t, opened) then ok, sv = fit(t.fx, t.b, t.bk, t.p, t.pn) end
        if not ok then
          pos = pos + 1
        else
          removeTicket(id)
          for _, s in ipairs(t.fx) do dequeue(s) end
          local rec = grant(t.fx, t.bk, sv, t.p == nil, t.t, NOW - t.e, t.l, id)
          wake(t, outcome(id, t.l, rec, NOW + t.t))
          if opened ~= nil and allFull(opened) then return end
        end
      end
    end
    batch = math.min(batch * 4, 256)
  end
end
