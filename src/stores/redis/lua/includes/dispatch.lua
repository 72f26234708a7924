--[[
  Tickets (keys queue, tickets, tdl, waits) and GroupState#dispatch: grants queued tickets in order.

  Each ticket waits on one wait key, the one thing that keeps it from fitting (as the core's wait
  points, src/core/state/tickets.ts):
    's<length>:<scope>'     a scope of its chain without room
    'u<backend>/<server>/'  the server it is pinned to, down
    'p<backend>/'           the backend's servers, none of them eligible
    'l'                     nothing but a learning window (rule 12)
  Key waits holds one member per ticket, <wait key><order><id> (order: class, fair tag, arrival,
  16 bytes, see includes/fair; id: the ticket id, 16 digits), all at score 0, so ZRANGEBYLEX reads
  a wait key's tickets in queue order in O(log n). No wait key is the start of another (a scope's
  carries its length, backend and server names have no '/'), so [key, key .. '\255') holds
  exactly the members of one key. Between calls every ticket's wait key is blocked: a dispatch reads only the
  tickets waiting on keys that may just have cleared, never the whole queue.
]]
--- @include "leases"
--- @include "outcomes"
--- @include "fair"

local function scopeKey(name) return 's' .. #name .. ':' .. name end
local function poolKey(bname) return 'p' .. bname .. '/' end
local function downKey(bname, sname) return 'u' .. bname .. '/' .. sname .. '/' end
local LEARN_KEY = 'l'
-- A member's tail after its wait key: the order and the ticket id.
local TAIL = 32
-- Rule D: this dispatch serves each class newest first (adaptive LIFO while the queue stands).
local LIFO = false

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

-- t: the ticket as loadTicket returns it, nil when its details are gone.
local function removeTicket(id, t)
  redis.call('ZREM', K_QUEUE, id)
  redis.call('HDEL', K_TICKETS, id)
  redis.call('ZREM', K_TDL, id)
  if t and t.w and t.o then redis.call('ZREM', K_WAITS, t.w .. t.o .. id) end
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

-- blockerOf in src/core/state/tickets.ts: the wait key of a chain that does not fit, nil when it
-- fits. The last scope without room (the narrowest), else the pinned server, else the backend.
-- Also the scope of that wait point (rule E's B): the scope itself, the pinned server's, the backend's.
local function blocker(fixed, b, bk, p, pn)
  for i = #fixed, 1, -1 do
    if not room(fixed[i]) then return scopeKey(fixed[i].name), fixed[i] end
  end
  if p then
    if pn and pn.up then return nil end
    return downKey(b, p), pn and pn.sc
  end
  if b and not (bk and choose(bk)) then return poolKey(b), bk and bk.sc end
  return nil
end

-- A wait key in a dispatch: what it stands for, read from the spec and the counters. A scope is
-- looked up, not made live: a keyed scope just collected must not come back (scope() would).
local function source(key)
  local kind = string.sub(key, 1, 1)
  if kind == 's' then
    local name = string.match(key, '^s%d+:(.*)$')
    if name and not SC[name] then prepare({name}, true) end
    return {key = key, s = name and SC[name]}
  elseif kind == 'p' then
    return {key = key, bk = backend(string.sub(key, 2, -2))}
  elseif kind == 'u' then
    local bname, sname = string.match(key, '^u([^/]*)/([^/]*)/$')
    local bk = bname and backend(bname)
    if bk then
      for _, sv in ipairs(bk.servers) do
        if sv.name == sname then return {key = key, sv = sv} end
      end
    end
    return {key = key} -- a backend or server the spec no longer has: never clear
  end
  return {key = key, learn = true}
end

-- The key no longer keeps its tickets from fitting (a learning key: dispatch runs only after the window).
local function clear(src)
  if src.s then return room(src.s) end
  if src.bk then return choose(src.bk) ~= nil end
  if src.sv then return src.sv.up and room(src.sv.sc) end
  return src.learn == true
end

-- Sets src.m to the key's first member after `after` (nil: its first), and src.rank; returns it.
-- Under LIFO the first is the newest of the lowest class and tag, the 10 bytes after the key
-- (after: gone from the key by then).
local function nextMember(src, after)
  local key = src.key
  local from = (after and not LIFO) and ('(' .. after) or ('[' .. key)
  local m = redis.call('ZRANGEBYLEX', K_WAITS, from, '(' .. key .. '\255', 'LIMIT', 0, 1)[1]
  if m and LIFO then
    local head = key .. string.sub(m, #key + 1, #key + 10)
    m = redis.call('ZREVRANGEBYLEX', K_WAITS, '(' .. head .. '\255', '[' .. head, 'LIMIT', 0, 1)[1]
  end
  src.m = m
  if m then src.rank = rank(string.sub(m, -TAIL), LIFO) end
  return m
end

-- A binary min-heap of sources by the rank of their first member: the merged queue of a dispatch.
local function hpush(h, e)
  local i = #h + 1
  while i > 1 do
    local up = math.floor(i / 2)
    if h[up].rank <= e.rank then break end
    h[i] = h[up]
    i = up
  end
  h[i] = e
end

local function hpop(h)
  local top, n = h[1], #h
  local last = h[n]
  h[n] = nil
  n = n - 1
  if n > 0 then
    local i = 1
    while true do
      local c = 2 * i
      if c > n then break end
      if c < n and h[c + 1].rank < h[c].rank then c = c + 1 end
      if h[c].rank >= last.rank then break end
      h[i] = h[c]
      i = c
    end
    h[i] = last
  end
  return top
end

-- Grants the ticket of member m, or files it under what blocks it now.
local function tryTicket(m)
  local id = string.sub(m, -16)
  local raw = redis.call('HGET', K_TICKETS, id)
  redis.call('ZREM', K_WAITS, m)
  if not raw then return end -- its details are gone: the member goes with them
  local t = loadTicket(id, raw)
  local ok, sv = fit(t.fx, t.b, t.bk, t.p, t.pn)
  if ok then
    t.w = nil
    -- The detector samples the wait of the oldest ticket queued, this one included (rule D).
    local oldest = QD ~= 'fifo' and oldestArrival() or nil
    removeTicket(id, t)
    for _, s in ipairs(t.fx) do dequeue(s) end
    local rec = grant(t.fx, t.bk, sv, t.p == nil, t.t, NOW - t.e, t.l, id)
    leave(t, true, oldest)
    wake(t, outcome(id, t.l, rec, NOW + t.t))
    return
  end
  local w = blocker(t.fx, t.b, t.bk, t.p, t.pn) or LEARN_KEY
  redis.call('HSET', K_TICKETS, id, cjson.encode({s = t.s, b = t.b, p = t.p, e = t.e, d = t.d, t = t.t, l = t.l, ch = t.ch, sh = t.sh, w = w, o = t.o, f = t.f}))
  redis.call('ZADD', K_WAITS, 0, w .. string.sub(m, -TAIL))
end

-- GroupState#dispatch: grants, in queue order, the tickets waiting on the wait keys given that
-- are clear, as one queue merged across them. A ticket that does not fit moves to what blocks it
-- now, which stays blocked for the rest of the call (grants only fill scopes); a key that a grant
-- blocked again is dropped with every ticket behind it. Each ticket read costs O(log n).
local function dispatchKeys(keys)
  local names, seen, heap = {}, {}, {}
  LIFO = QD == 'lifo' and standing(NOW)
  for _, key in ipairs(keys) do
    local name = string.match(key, '^s%d+:(.*)$')
    if name then names[#names + 1] = name end
  end
  if #names > 0 then prepare(names, true) end
  for _, key in ipairs(keys) do
    if not seen[key] then
      seen[key] = true
      local src = source(key)
      if nextMember(src, nil) and clear(src) then hpush(heap, src) end
    end
  end
  while #heap > 0 do
    local src = hpop(heap)
    if clear(src) then
      local m = src.m
      tryTicket(m)
      if clear(src) and nextMember(src, m) then hpush(heap, src) end
    end
  end
end

-- Every wait key that has tickets, in byte order.
local function allKeys()
  local keys, from = {}, '-'
  while true do
    local m = redis.call('ZRANGEBYLEX', K_WAITS, from, '+', 'LIMIT', 0, 1)[1]
    if not m then return keys end
    local key = string.sub(m, 1, -TAIL - 1)
    keys[#keys + 1] = key
    from = '(' .. key .. '\255'
  end
end

-- GroupState#dispatch after scopes went from full to having room (opened: name -> scope), or,
-- with nil, after anything may have changed (a new spec, the end of a learning window): every
-- wait key is looked at. A server's scope also clears the tickets pinned to it and those its
-- backend may choose it for. Nothing is granted while the group is learning (rule 12): settle
-- dispatches when the window ends.
local function dispatch(opened)
  if opened ~= nil and next(opened) == nil then return end
  if group().learn ~= 0 then return end
  if opened == nil then return dispatchKeys(allKeys()) end
  local keys = {}
  for name, s in pairs(opened) do
    keys[#keys + 1] = scopeKey(name)
    if s.kind == 's' then
      local bname, sname = string.match(name, '^server:([^/]*)/(.*)$')
      if bname then
        keys[#keys + 1] = downKey(bname, sname)
        keys[#keys + 1] = poolKey(bname)
      end
    end
  end
  dispatchKeys(keys)
end

-- GroupState#setServerState: a server came up; its pinned tickets and its backend's may fit.
local function dispatchUp(bname, sname)
  if group().learn ~= 0 then return end
  dispatchKeys({downKey(bname, sname), poolKey(bname)})
end
