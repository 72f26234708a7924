/**
 * Lua shared by every script: the state machine of `src/core/state/group-state.ts` (and the
 * balancing of `balance.ts`) rule for rule, over the keys of one group. Each script is its
 * header, this library, then its own body; the text is fixed at module load and never contains
 * user input (user strings only ever arrive as ARGV).
 *
 * Conventions:
 * - `NOW` is the Redis server clock (`TIME`), never the client's.
 * - Scope counters are read once per run into `SC` and written back by `flush()`, which every
 *   script calls before it returns (also on error paths, since `advance()` may have changed state).
 * - Ticket and lease records are JSON; every number in them is below 10^14 (ms timestamps,
 *   fences), which cjson encodes exactly. Queue scores never go through JSON.
 */
import { WAIT_BUCKETS_MS } from "../../../core/stats.js";
import { KEY_LAYOUT } from "../keys.js";

/** The KEYS part of every script's header: all scripts take the same keys. */
export const KEYS_DOC = KEY_LAYOUT.map(([suffix, doc], i) => `    KEYS[${i + 1}]${" ".repeat(i < 9 ? 2 : 1)}${suffix.padEnd(8)} ${doc}`).join("\n");

/** How long an outcome addressed to a waiter is kept past its queue deadline when nobody claims it. */
export const GRANT_KEEP_MS = 60_000;

/** Reply status of a script whose group has no `cfg` (never configured, or the data was lost). */
export const NOT_CONFIGURED = -100;

export const LIB = String.raw`
local K_CFG, K_SC, K_SRV, K_LEASES, K_LEASE, K_QUEUE = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local K_TICKETS, K_TDL, K_GRANTS, K_GEXP, K_META, K_HIST = KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12]

local INF = math.huge
local BOUNDS = {${WAIT_BUCKETS_MS.join(", ")}}
local GRANT_KEEP_MS = ${GRANT_KEEP_MS}
local NOT_CONFIGURED = ${NOT_CONFIGURED}
-- Queue score = (class + 2048) * 2^40 + (arrival + offset - base): at most 2^52, exact in a double.
local CLASS_STEP = 1099511627776
local BASE_LEAD = 1048576
local STATS = {'in_use', 'queued', 'peak_in_use', 'peak_queued', 'granted', 'rejected_full',
  'rejected_queue_full', 'queue_timeouts', 'aborted', 'expired', 'released', 'keys'}

local NOW
do
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- ── spec ─────────────────────────────────────────────────────────────────────────────────────

local CFG, META -- decoded GroupSpec; scope name -> {kind, max, mq} for every declared scope

local function lim(v)
  if type(v) == 'number' then return v end
  return INF -- JSON null: no limit
end

local function loadCfg()
  local raw = redis.call('GET', K_CFG)
  if not raw then return false end
  CFG = cjson.decode(raw)
  META = {}
  for name, l in pairs(CFG.limits) do
    META[name] = {kind = (l.keyed == true) and 'a' or 'n', max = lim(l.max), mq = lim(l.maxqueue)}
  end
  for bname, b in pairs(CFG.backends) do
    META['backend:' .. bname] = {kind = 'b', max = lim(b.max), mq = lim(b.maxqueue)}
    for _, s in ipairs(b.servers) do
      META['server:' .. bname .. '/' .. s.name] = {kind = 's', max = lim(s.max), mq = lim(s.maxqueue)}
    end
  end
  return true
end

-- GroupState#tryKeyed: '<limit>:<value>', the shortest keyed prefix wins; a leading ':' never matches.
local function keyedParent(name)
  local p = string.find(name, ':', 1, true)
  while p and p > 1 do
    local parent = string.sub(name, 1, p - 1)
    local m = META[parent]
    if m and m.kind == 'a' then return parent, m end
    p = string.find(name, ':', p + 1, true)
  end
  return nil
end

-- ── scopes ───────────────────────────────────────────────────────────────────────────────────

local SC = {}

local function load(name, kind, max, mq, parent)
  local fields = {}
  for i = 1, #STATS do fields[i] = name .. '\0' .. STATS[i] end
  local raw = redis.call('HMGET', K_SC, unpack(fields))
  local s = {name = name, kind = kind, max = max, mq = mq, parent = parent, v = {}, live = false, dirty = false}
  for i = 1, #STATS do
    if raw[i] then s.live = true end
    s.v[STATS[i]] = tonumber(raw[i]) or 0
  end
  SC[name] = s
  return s
end

-- The scope, or nil when the spec does not know the name. A keyed scope that does not exist yet
-- is created, and counts one more key on its limit's aggregate row.
local function scope(name)
  local s = SC[name]
  if not s then
    local m = META[name]
    if m then
      s = load(name, m.kind, m.max, m.mq, nil)
    else
      local parent, pm = keyedParent(name)
      if not parent then return nil end
      s = load(name, 'k', pm.max, pm.mq, parent)
    end
  end
  if s.kind == 'k' and not s.live then
    s.live = true
    s.dirty = true
    local p = scope(s.parent)
    p.v.keys = p.v.keys + 1
    p.dirty = true
  end
  return s
end

-- A scope some lease or ticket holds: known to the spec, or one a reconfiguration removed (kind
-- 'x', as the core's retired scopes: its holders can still release, its counters still move, but
-- it never has room, so tickets that need it wait until they time out).
local function held(name)
  return scope(name) or SC[name] or load(name, 'x', INF, INF, nil)
end

local function room(s) return s.v.in_use < s.max and s.kind ~= 'x' end
local function qfull(s) return s.v.queued >= s.mq end

local function parentOf(s)
  if s.parent then return scope(s.parent) end
  return nil
end

local function bump(s, stat, d)
  s.v[stat] = s.v[stat] + d
  s.dirty = true
end

local function take(s)
  while s do
    bump(s, 'in_use', 1)
    bump(s, 'granted', 1)
    if s.v.in_use > s.v.peak_in_use then s.v.peak_in_use = s.v.in_use end
    s = parentOf(s)
  end
end

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

local function enqueue(s)
  while s do
    bump(s, 'queued', 1)
    if s.v.queued > s.v.peak_queued then s.v.peak_queued = s.v.queued end
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

-- GroupState#collect: keyed scopes nobody holds or waits on are dropped.
local function collect(list)
  for _, s in ipairs(list) do
    if s.kind == 'k' and s.live and s.v.in_use == 0 and s.v.queued == 0 then
      s.live = false
      for i = 1, #STATS do s.v[STATS[i]] = 0 end
      s.dirty = true
      local p = scope(s.parent)
      p.v.keys = p.v.keys - 1
      p.dirty = true
    end
  end
end

-- ── backends and balancing (balance.ts) ──────────────────────────────────────────────────────

local BK = {}

local function srvField(bname, sname, f) return bname .. '/' .. sname .. '\0' .. f end

local function backend(bname)
  local b = BK[bname]
  if b then return b end
  local spec = CFG.backends[bname]
  if not spec then return nil end
  local fields = {bname .. '\0last'}
  for _, s in ipairs(spec.servers) do
    fields[#fields + 1] = srvField(bname, s.name, 'up')
    fields[#fields + 1] = srvField(bname, s.name, 'cw')
  end
  local raw = redis.call('HMGET', K_SRV, unpack(fields))
  b = {name = bname, balance = spec.balance, scope = scope('backend:' .. bname), servers = {},
    last = tonumber(raw[1]) or -1, dirty = false}
  for i, s in ipairs(spec.servers) do
    local up = raw[2 * i]
    if up then up = (up == '1') else up = (s.down ~= true) end
    b.servers[i] = {name = s.name, idx = i, weight = s.weight, up = up, cw = tonumber(raw[2 * i + 1]) or 0,
      scope = scope('server:' .. bname .. '/' .. s.name)}
  end
  BK[bname] = b
  return b
end

local function eligible(sv) return sv.up and room(sv.scope) end

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
      if eligible(sv) and (best == nil or sv.scope.v.in_use < best.scope.v.in_use) then best = sv end
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

-- ── write-back ───────────────────────────────────────────────────────────────────────────────

local function hsetChunks(key, args)
  for i = 1, #args, 200 do redis.call('HSET', key, unpack(args, i, math.min(i + 199, #args))) end
end

local function hdelChunks(key, args)
  for i = 1, #args, 200 do redis.call('HDEL', key, unpack(args, i, math.min(i + 199, #args))) end
end

local function flush()
  local set, del = {}, {}
  for name, s in pairs(SC) do
    if s.dirty then
      s.dirty = false
      -- Idle keys, and idle scopes a reconfiguration removed, leave the hash (core: #collect/retire).
      local gone = (s.kind == 'k' and not s.live) or (s.kind == 'x' and s.v.in_use == 0 and s.v.queued == 0)
      for i = 1, #STATS do
        local st = STATS[i]
        if gone then
          del[#del + 1] = name .. '\0' .. st
        elseif st ~= 'keys' or s.kind == 'a' then
          set[#set + 1] = name .. '\0' .. st
          set[#set + 1] = s.v[st]
        end
      end
    end
  end
  hsetChunks(K_SC, set)
  hdelChunks(K_SC, del)
  local srv = {}
  for bname, b in pairs(BK) do
    if b.dirty then
      b.dirty = false
      srv[#srv + 1] = bname .. '\0last'
      srv[#srv + 1] = b.last
      for _, sv in ipairs(b.servers) do
        srv[#srv + 1] = srvField(bname, sv.name, 'cw')
        srv[#srv + 1] = sv.cw
      end
    end
  end
  hsetChunks(K_SRV, srv)
end

-- ── leases ───────────────────────────────────────────────────────────────────────────────────

local function recordWait(waited)
  local bucket = #BOUNDS
  for i = 1, #BOUNDS do
    if waited <= BOUNDS[i] then
      bucket = i - 1
      break
    end
  end
  redis.call('HINCRBY', K_HIST, bucket, 1)
  redis.call('HINCRBY', K_HIST, 'count', 1)
  redis.call('HINCRBY', K_HIST, 'sum', waited)
end

-- GroupState#grant. fixed: scope objects; sv: the server taken (nil if none); balanced: sv was
-- chosen by the backend's balance, not pinned. ticket: the ticket granted, nil for an immediate grant.
local function grant(fixed, b, sv, balanced, ttl, waited, leaseId, ticket)
  local chain = {}
  for i, s in ipairs(fixed) do chain[i] = s end
  if sv and b and balanced then
    commit(b, sv)
    chain[#chain + 1] = sv.scope
  end
  local names = {}
  for i, s in ipairs(chain) do
    take(s)
    names[i] = s.name
  end
  local fence = redis.call('HINCRBY', K_META, 'fence', 1)
  local rec = {c = names, f = fence, g = NOW, t = ttl, k = ticket}
  if b then rec.b = b.name end
  if sv then rec.s = sv.name end
  redis.call('HSET', K_LEASE, leaseId, cjson.encode(rec))
  redis.call('ZADD', K_LEASES, NOW + ttl, leaseId)
  recordWait(waited)
  return {id = leaseId, fence = fence, b = rec.b, s = rec.s, exp = NOW + ttl, ttl = ttl, waited = waited}
end

-- GroupState#endLease: returns the scopes that went from full to having room (name -> scope).
local function endLease(id, rec, expired)
  redis.call('HDEL', K_LEASE, id)
  redis.call('ZREM', K_LEASES, id)
  local how = expired and 'expired' or 'released'
  local chain, opened = {}, {}
  for i, name in ipairs(rec.c) do
    local s = held(name)
    chain[i] = s
    if give(s, how) then opened[name] = s end
  end
  collect(chain)
  return opened
end

-- ── tickets ──────────────────────────────────────────────────────────────────────────────────

local function loadTicket(id, raw)
  local t = cjson.decode(raw)
  t.id = id
  t.fx = {}
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
  for _, s in ipairs(fixed) do
    if not room(s) then return false end
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
      if opened[sv.scope.name] then return true end
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

-- Records an outcome for the ticket's waiter (so a lost message cannot strand it) and wakes it.
local function deliver(t, msg)
  redis.call('HSET', K_GRANTS, t.id, msg)
  redis.call('ZADD', K_GEXP, math.max(t.d, NOW) + GRANT_KEEP_MS, t.id)
  if t.sh == 1 then
    redis.call('SPUBLISH', t.ch, msg)
  else
    redis.call('PUBLISH', t.ch, msg)
  end
end

local function grantMsg(id, l)
  return cjson.encode({k = id, o = 'g', l = l.id, f = l.fence, x = l.exp, t = l.ttl, w = l.waited, b = l.b, s = l.s})
end

-- GroupState#dispatch: grants queued tickets in order. With opened (name -> scope), only tickets
-- that need a scope which just got room are tried; a ticket that does not fit is skipped.
local function dispatch(opened)
  if opened ~= nil and next(opened) == nil then return end
  local pos = 0
  while true do
    local ids = redis.call('ZRANGE', K_QUEUE, pos, pos + 63)
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
          local l = grant(t.fx, t.bk, sv, t.p == nil, t.t, NOW - t.e, t.l, id)
          deliver(t, grantMsg(id, l))
          if opened ~= nil and allFull(opened) then return end
        end
      end
    end
  end
end

-- GroupState#advance: settles every deadline <= NOW in time order, as if each had been handled at
-- its own moment (a queue timeout first at the same instant), dispatching after each expiry; then
-- drops outcomes nobody claimed in time.
local function advance()
  while true do
    local t = redis.call('ZRANGE', K_TDL, 0, 0, 'WITHSCORES')
    local l = redis.call('ZRANGE', K_LEASES, 0, 0, 'WITHSCORES')
    local tAt = t[2] and tonumber(t[2]) or nil
    local lAt = l[2] and tonumber(l[2]) or nil
    local tDue = tAt ~= nil and tAt <= NOW
    local lDue = lAt ~= nil and lAt <= NOW
    if tDue and (not lDue or tAt <= lAt) then
      local id = t[1]
      local raw = redis.call('HGET', K_TICKETS, id)
      removeTicket(id)
      if raw then
        local tk = loadTicket(id, raw)
        for _, s in ipairs(tk.fx) do dequeue(s, 'queue_timeouts') end
        collect(tk.fx)
        deliver(tk, cjson.encode({k = id, o = 't'}))
      end
    elseif lDue then
      local id = l[1]
      local raw = redis.call('HGET', K_LEASE, id)
      if raw then
        dispatch(endLease(id, cjson.decode(raw), true))
      end
      redis.call('ZREM', K_LEASES, id)
    else
      break
    end
  end
  local stale = redis.call('ZRANGEBYSCORE', K_GEXP, '-inf', NOW, 'LIMIT', 0, 256)
  if #stale > 0 then
    redis.call('HDEL', K_GRANTS, unpack(stale))
    redis.call('ZREM', K_GEXP, unpack(stale))
  end
end

-- ms until the next lease expiry or queue deadline, -1 when there is none.
local function nextIn()
  local l = redis.call('ZRANGE', K_LEASES, 0, 0, 'WITHSCORES')
  local t = redis.call('ZRANGE', K_TDL, 0, 0, 'WITHSCORES')
  local n
  if l[2] then n = tonumber(l[2]) end
  if t[2] and (n == nil or tonumber(t[2]) < n) then n = tonumber(t[2]) end
  if n == nil then return -1 end
  return math.max(0, n - NOW)
end
`;
