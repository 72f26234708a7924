--[[
  Counters (key sc): scopes as GroupState has them (ScopeState), read once per run into SC and the
  group-wide ones into GRP, changed with put/bump and written back by flush() (include "flush").
  READ: the counters every script reads up front; a script adds those it usually moves.
]]
--- @include "cfg"
--- @include "bounds"

-- Every counter of a scope, as stats lists them.
local STATS = {'in_use', 'queued', 'peak_in_use', 'peak_queued', 'granted', 'rejected_full',
  'rejected_queue_full', 'queue_timeouts', 'aborted', 'expired', 'released', 'keys', 'rejected_early', 'codel_dropped'}
-- Rule E: a scope's hand-off rate, unset (nil) until its first hand-off: ho the last hand-off
-- (store ms), hm its EWMA (ms, a float). Not counters: they go with a collected key as counters do.
local HANDOFF = {'ho', 'hm'}

local READ = {'in_use', 'queued', 'peak_in_use', 'peak_queued'}

-- A scope: {name, kind, max, mq, parent, live, and a field per counter read}, its changes in ch
-- (counter -> true: write the field whole) and dl (counter -> change, for counters not read).
local SC = {} -- scope name -> scope
local DIRTY = {} -- scopes changed since the last flush, in order

-- The group-wide counters, shaped as a scope named '' (no scope is): sc fields '\0<counter>'.
-- fence, seq, base, wsum, w0, the state-loss fields (epoch, learn, blind, lstart: see detect), and
-- rule F's virtual time vt and rule D's aboveSince (above, -1: unset) are read with the first
-- scopes, or by group().
local GRP = {name = '', kind = 'g', live = true, loaded = false}

local function newScope(name, kind, max, mq, parent)
  local s = {name = name, kind = kind, max = max, mq = mq, parent = parent, live = false}
  SC[name] = s
  return s
end

-- Reads the READ counters of new scopes (and the group's, the first time) in one HMGET. A keyed
-- scope exists while any is stored (a live key always has in_use or queued).
local function loadAll(list)
  local n, fields, k = #READ, {}, 0
  for i = 1, #list do
    local prefix = list[i].name .. '\0'
    for j = 1, n do fields[k + j] = prefix .. READ[j] end
    fields[k + n + 1], fields[k + n + 2] = prefix .. 'ho', prefix .. 'hm'
    k = k + n + 2
  end
  local first = not GRP.loaded
  if first then
    fields[k + 1], fields[k + 2], fields[k + 3], fields[k + 4], fields[k + 5] = '\0fence', '\0seq', '\0base', '\0wsum', '\0w0'
    fields[k + 6], fields[k + 7], fields[k + 8], fields[k + 9] = '\0epoch', '\0learn', '\0blind', '\0lstart'
    fields[k + 10], fields[k + 11] = '\0vt', '\0above'
  end
  local raw = hmget(K_SC, fields)
  k = 0
  for i = 1, #list do
    local s = list[i]
    for j = 1, n do
      local x = raw[k + j]
      if x then s.live = true end
      s[READ[j]] = tonumber(x) or 0
    end
    s.ho, s.hm = tonumber(raw[k + n + 1]), tonumber(raw[k + n + 2])
    k = k + n + 2
  end
  if first then
    GRP.loaded = true
    GRP.fence, GRP.seq, GRP.base = tonumber(raw[k + 1]) or 0, tonumber(raw[k + 2]) or 0, tonumber(raw[k + 3]) or 0
    GRP.wsum, GRP.w0 = tonumber(raw[k + 4]) or 0, tonumber(raw[k + 5]) or 0
    GRP.epoch, GRP.learn = tonumber(raw[k + 6]) or 0, tonumber(raw[k + 7]) or 0
    GRP.blind, GRP.lstart = tonumber(raw[k + 8]) or 0, tonumber(raw[k + 9]) or 0
    GRP.vt, GRP.above = tonumber(raw[k + 10]) or 0, tonumber(raw[k + 11]) or -1
  end
end

local function group()
  if not GRP.loaded then loadAll({}) end
  return GRP
end

-- Creates the scopes of names not loaded yet, and reads their counters in one HMGET: the spec's
-- own, keyed ones (with their aggregate row) and, with retired, names the spec no longer has
-- (kind 'x', as the core's retired scopes: its holders can still release, its counters still
-- move, but it never has room, so tickets that need it wait until they time out).
local function prepare(names, retired)
  fetchMeta(names)
  local fresh
  for i = 1, #names do
    local name = names[i]
    if not SC[name] then
      fresh = fresh or {}
      local m = META[name]
      if m then
        fresh[#fresh + 1] = newScope(name, m.kind, m.max, m.mq, nil)
      else
        local parent, pm = keyedParent(name)
        if parent then
          if not SC[parent] then fresh[#fresh + 1] = newScope(parent, pm.kind, pm.max, pm.mq, nil) end
          fresh[#fresh + 1] = newScope(name, 'k', pm.max, pm.mq, parent)
        elseif retired then
          fresh[#fresh + 1] = newScope(name, 'x', INF, INF, nil)
        end
      end
    end
  end
  if fresh and #fresh > 0 then loadAll(fresh) end
end

local function put(s, stat, value)
  s[stat] = value
  local ch = s.ch or {}
  s.ch = ch
  ch[stat] = true
  if not s.dirty then
    s.dirty = true
    DIRTY[#DIRTY + 1] = s
  end
end

local function bump(s, stat, d)
  local v = s[stat]
  if v then return put(s, stat, v + d) end
  local dl = s.dl or {}
  s.dl = dl
  dl[stat] = (dl[stat] or 0) + d
  if not s.dirty then
    s.dirty = true
    DIRTY[#DIRTY + 1] = s
  end
end

-- The scope, or nil when the spec does not know the name. A keyed scope that does not exist yet
-- is created, and counts one more key on its limit's aggregate row.
local function scope(name)
  local s = SC[name]
  if not s then
    prepare({name}, false)
    s = SC[name]
    if not s then return nil end
  end
  if s.kind == 'x' then return nil end
  if s.kind == 'k' and not s.live then
    s.live = true
    bump(SC[s.parent], 'keys', 1)
  end
  return s
end

-- A scope some lease or ticket holds: known to the spec, or one a reconfiguration removed ('x').
local function held(name)
  local s = scope(name)
  if s then return s end
  if not SC[name] then prepare({name}, true) end
  return SC[name]
end

local function room(s) return s.in_use < s.max and s.kind ~= 'x' end

local function parentOf(s)
  if s.parent then return scope(s.parent) end
  return nil
end

-- One more slot in use in s and its parents; counted as a grant unless it re-registers a lease (rule 12).
local function occupy(s, asGrant)
  while s do
    bump(s, 'in_use', 1)
    if asGrant then bump(s, 'granted', 1) end
    if s.in_use > s.peak_in_use then put(s, 'peak_in_use', s.in_use) end
    s = parentOf(s)
  end
end

local function take(s) occupy(s, true) end

-- Returns true when the scope went from full to having room.
local function give(s, how)
  local wasFull = not room(s)
  local p = s
  while p do
    bump(p, 'in_use', -1)
    bump(p, how, 1)
    p = parentOf(p)
  end
  return wasFull and room(s)
end

local function qfull(s) return s.queued >= s.mq end

local function enqueue(s)
  while s do
    bump(s, 'queued', 1)
    if s.queued > s.peak_queued then put(s, 'peak_queued', s.queued) end
    s = parentOf(s)
  end
end

local function dequeue(s, how)
  while s do
    bump(s, 'queued', -1)
    if how then bump(s, how, 1) end
    s = parentOf(s)
  end
end

local function count(s, counter)
  while s do
    bump(s, counter, 1)
    s = parentOf(s)
  end
end

-- GroupState#collect: keyed scopes nobody holds or waits on are dropped. Their counters restart at
-- 0: flush deletes them, or writes them whole if the key comes back within the same call.
local function collect(list)
  for i = 1, #list do
    local s = list[i]
    if s.kind == 'k' and s.live and s.in_use == 0 and s.queued == 0 then
      s.live = false
      s.dl = nil
      for j = 1, #STATS do put(s, STATS[j], 0) end
      s.ho, s.hm, s.hreset = nil, nil, true
      if s.ch then s.ch.ho, s.ch.hm = nil, nil end
      bump(scope(s.parent), 'keys', -1)
    end
  end
end

-- Rule E at a hand-off (a grant from the queue) on scope s: the EWMA of the time between two
-- hand-offs, computed exactly as the core does (the same operations in the same order).
local function handoff(s)
  local last = s.ho
  if last then
    local d = NOW - last
    local hm = s.hm
    if hm then hm = hm + (d - hm) / 8 else hm = d end
    put(s, 'hm', hm)
  end
  put(s, 'ho', NOW)
end

local function recordWait(waited)
  local bucket = #BOUNDS
  for i = 1, #BOUNDS do
    if waited <= BOUNDS[i] then
      bucket = i - 1
      break
    end
  end
  local g = group()
  bump(g, 'w' .. bucket, 1)
  if waited ~= 0 then bump(g, 'wsum', waited) end
end
