--[[
  The queue's order and its overload rules (docs/semantics.md, rules F and D), as the core's
  GroupState keeps them:
  - the order of a ticket, (class, tag, arrival + offset, seq), as the 16 bytes a member of key
    waits carries between its wait key and its id: class + 2048 in 2, the fair tag in 8 and
    arrival + offset - base in 6 digits of base 127, each digit one byte from 1 to 127. Fixed width,
    so Redis orders members by their bytes exactly as the core orders tickets; no byte is 0, and
    the last 16 bytes of every member stay the ticket id;
  - flows (key flows): flow name -> 'F n g' (finish tag, tickets waiting, granted since it began to
    wait), read once per call and written back by flush();
  - the group's virtual time V (sc '\0vt') and the standing detector's aboveSince (sc '\0above',
    -1: unset), in GRP.
]]
--- @include "scopes"

local function enc(x, width)
  local out = {}
  for i = width, 1, -1 do
    local d = math.fmod(x, 127) -- exact, where x % 127 divides in floating point first
    out[i] = string.char(d + 1)
    x = (x - d) / 127
  end
  return table.concat(out)
end

local function dec(s, from, to)
  local x = 0
  for i = from, to do x = x * 127 + string.byte(s, i) - 1 end
  return x
end

-- The order of a ticket: class, tag, arrival + offset - base (clamped as the score was), 16 bytes.
local function orderOf(cls, tag, at)
  return enc(cls + 2048, 2) .. enc(tag, 8) .. enc(at, 6)
end

local function tagOf(o) return dec(o, 3, 10) end

local FLIP = {['0'] = '9', ['1'] = '8', ['2'] = '7', ['3'] = '6', ['4'] = '5', ['5'] = '4', ['6'] = '3', ['7'] = '2', ['8'] = '1', ['9'] = '0'}

-- A member's tail (order and id, 32 bytes) as digits that compare as the core compares tickets
-- (Lua compares strings by the locale: digits only, of equal length). lifo: newest first among
-- tickets of equal class and tag (rule D), class and tag still first.
local function rank(tail, lifo)
  local rest = string.format('%013d', dec(tail, 11, 16)) .. string.sub(tail, 17)
  if lifo then rest = (string.gsub(rest, '%d', FLIP)) end
  return string.format('%04d%016d', dec(tail, 1, 2), dec(tail, 3, 10)) .. rest
end

-- ── flows ──

local FLOWS = {} -- flow name -> {F, n, g, dirty}, as read or changed in this call
local WEIGHTS = {} -- flow name -> its cost, 1e6 / weight rounded down

local function flowEntry(name)
  local f = FLOWS[name]
  if f then return f end
  local raw = redis.call('HGET', K_FLOWS, name)
  local F, n, g = 0, 0, 0
  if raw then
    local a, b, c = string.match(raw, '^(%d+) (%d+) (%d+)$')
    F, n, g = tonumber(a), tonumber(b), tonumber(c)
  end
  f = {F = F, n = n, g = g, dirty = false, stored = raw and true or false} -- HGET: false when missing
  FLOWS[name] = f
  return f
end

local function flowCost(name)
  local c = WEIGHTS[name]
  if c then return c end
  c = math.floor(1000000 / (tonumber(redis.call('HGET', K_CFG, 'f' .. name)) or 1))
  WEIGHTS[name] = c
  return c
end

-- Rule F (FairQueue in src/core/state/fairness.ts): the tag of a ticket that queues and the flow
-- it queues under, its entry moved on. name nil (it named none): the default flow '' (weight 1)
-- while a named flow has an entry, else none (tag V, no entry).
local function fairTag(name)
  local v = group().vt
  local c = 1000000
  if name then
    c = flowCost(name)
  else
    -- Whether a named flow has an entry: one in this call's cache, or one stored that the cache
    -- has not read (the default one is read first, so it is not among those).
    flowEntry('')
    local stored, named = 0, false
    for fname, f in pairs(FLOWS) do
      if fname ~= '' and f.n > 0 then named = true end
      if f.stored then stored = stored + 1 end
    end
    if not (named or redis.call('HLEN', K_FLOWS) > stored) then return v, nil end
    name = ''
  end
  local f = flowEntry(name)
  local tag = v
  if f.n > 0 then
    -- Never charged more than its backlog (and the ticket in service) ahead of V: tickets that
    -- left ungranted give their cost back.
    tag = math.max(v, math.min(f.F, v + (f.n + 1) * c))
  else
    f.g = 0
  end
  if tag + c > 1125899906842624 then
    -- The hard bound, 2^50 (MAX_TAG in fairness.ts; rank's 16 digits and the order's 8 bytes hold
    -- more): past it, arrival order within the class until the queue empties.
    tag = v
    if f.n == 0 then f.F = v end
  else
    f.F = tag + c
  end
  f.n = f.n + 1
  f.dirty = true
  return tag, name
end

local function flowFlush()
  local set, del = {}, {}
  for name, f in pairs(FLOWS) do
    if f.dirty then
      f.dirty = false
      f.stored = f.n > 0
      if f.n > 0 then
        set[#set + 1] = name
        set[#set + 1] = string.format('%d %d %d', f.F, f.n, f.g)
      else
        del[#del + 1] = name
      end
    end
  end
  for i = 1, #set, 200 do redis.call('HSET', K_FLOWS, unpack(set, i, math.min(i + 199, #set))) end
  for i = 1, #del, 200 do redis.call('HDEL', K_FLOWS, unpack(del, i, math.min(i + 199, #del))) end
end

-- ── the standing detector (rule D) ──

-- The queue stands at t: the minimum wait stayed above the target for a whole interval.
local function standing(t)
  local above = group().above
  return QD ~= 'fifo' and above ~= -1 and t >= above + QI
end

-- The arrival of the oldest ticket in the queue (the detector's sample, rule D): key queue is by
-- arrival, ties by id (the arrival order).
local function oldestArrival()
  return tonumber(redis.call('ZRANGE', K_QUEUE, 0, 0, 'WITHSCORES')[2])
end

-- A ticket left the queue by any road (t: its details; granted: as a grant, at NOW, when oldest
-- was the arrival of the oldest ticket queued, this one included). Rules F and D: its flow's
-- entry, V, the detector; an empty queue starts V and the detector afresh.
local function leave(t, granted, oldest)
  local g = group()
  if t.f then
    local f = flowEntry(t.f)
    f.n = f.n - 1
    if granted then f.g = f.g + 1 end
    f.dirty = true
  end
  if granted then
    local tag = tagOf(t.o)
    if tag > g.vt then put(g, 'vt', tag) end
    if QD ~= 'fifo' then
      if NOW - (oldest or t.e) < QT then
        if g.above ~= -1 then put(g, 'above', -1) end
      elseif g.above == -1 then
        put(g, 'above', NOW)
        due(NOW + QI)
      end
    end
  end
  if (g.vt ~= 0 or g.above ~= -1) and redis.call('ZCARD', K_QUEUE) == 0 then
    if g.vt ~= 0 then put(g, 'vt', 0) end
    if g.above ~= -1 then put(g, 'above', -1) end
  end
end
