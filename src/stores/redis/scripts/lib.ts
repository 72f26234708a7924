/**
 * Lua shared by the scripts: the state machine of `src/core/state/group-state.ts` (and the
 * balancing of `balance.ts`) rule for rule, over the keys of one group. The text is fixed at
 * module load and never contains user input (user strings only ever arrive as ARGV).
 *
 * The library is a list of units (a constant, a table or a function), each declaring the units it
 * uses; a script gets only the units its body reaches (`libraryFor`), in library order. Units
 * marked cold are what only the slower paths need (queueing, dispatching, settling deadlines,
 * backends): they are defined on first use, inside `cold()`, and called as `cold().name(...)`.
 * Defining a Lua function costs more than the simple call runs (Lua 5.1 searches every captured
 * variable in a list as long as the number of captured locals), so an uncontended acquire or
 * release defines only what it runs.
 *
 * The hot scripts (acquire, release, renew, sweep) also have a fast path for their common case
 * (see `ScriptOptions.fast` in `define.ts`): straight-line Lua over named scopes that writes what
 * this library would, and hands everything else to it before writing anything.
 *
 * Conventions:
 * - `NOW` is the Redis server clock (`TIME`), never the client's.
 * - Every script first calls `start()`: one HMGET of `cfg` that says whether the group is
 *   configured, reads the deadline hints and the limits of the scopes the call names.
 * - Counters are read once per run into `SC` (scopes) and `GRP` (group-wide): only those in `READ`
 *   (what decides admission, the peaks, the counters the script usually moves) and the group's
 *   fence, ticket sequence, queue base and histogram head. `flush()`, which every script calls
 *   before it returns (also on error paths, since `advance()` may have changed state), writes
 *   what changed: the fields read in one HSET, the others with HINCRBY.
 * - Ticket and lease records are JSON; every number in them is below 10^14 (ms timestamps,
 *   fences), which cjson encodes exactly. Queue scores never go through JSON.
 */
import { WAIT_BUCKETS_MS } from "../../../core/stats.js";
import { KEY_LAYOUT } from "../keys.js";

/** The KEYS part of every script's header: all scripts take the same keys. */
export const KEYS_DOC = KEY_LAYOUT.map(([suffix, doc], i) => `    KEYS[${i + 1}]${" ".repeat(i < 9 ? 2 : 1)}${suffix.padEnd(8)} ${doc}`).join("\n");

/** How long an outcome kept for a waiter stays when nobody claims it. */
export const GRANT_KEEP_MS = 60_000;

/** Reply status of a script whose group has no spec in `cfg` (never configured, or the data was lost). */
export const NOT_CONFIGURED = -100;

/** Queue score = (class + 2048) * CLASS_STEP + (arrival + offset - base): at most 2^52, exact in a double. */
export const CLASS_STEP = 2 ** 40;

/** How far before the first ticket's arrival a queue's score base is set (a negative offset stays above it). */
export const BASE_LEAD = 2 ** 20;

/** Scope counters every script reads (see `READ`); a script adds the counters it expects to move. */
export const BASE_READ = ["in_use", "queued", "peak_in_use", "peak_queued"] as const;

const KEY_NAMES = KEY_LAYOUT.map(([suffix]) => `K_${suffix.toUpperCase()}`);

/** The keys by name. */
export const KEY_LOCALS = `local ${KEY_NAMES.join(", ")} = ${KEY_NAMES.map((_, i) => `KEYS[${i + 1}]`).join(", ")}`;

/** Always at the top of a script, after its header: the keys by name and the clock. */
export const PRELUDE = String.raw`
${KEY_LOCALS}
local NOW
do
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end`;

interface Unit {
  /** The local(s) the unit defines; the first is its name. */
  readonly defines: readonly string[];
  /** Units whose locals the code uses (a hot unit names cold ones it calls through `cold()`). Checked at module load against the code. */
  readonly deps: readonly string[];
  readonly code: string;
  readonly cold: boolean;
}

const unit = (cold: boolean) => (defines: string | readonly string[], deps: readonly string[], code: string): Unit => ({
  defines: typeof defines === "string" ? [defines] : defines,
  deps,
  code: code.trim(),
  cold,
});
const hot = unit(false);
const cold = unit(true);

const UNITS: readonly Unit[] = [
  // ── constants ──────────────────────────────────────────────────────────────────────────────
  hot("INF", [], `local INF = math.huge`),
  hot("NONE", [], `local NONE = 1e15 -- "no deadline": later than any store time in ms`),
  hot("BOUNDS", [], `local BOUNDS = {${WAIT_BUCKETS_MS.join(", ")}}`),
  hot("GRANT_KEEP_MS", [], `local GRANT_KEEP_MS = ${GRANT_KEEP_MS}`),
  hot("NOT_CONFIGURED", [], `local NOT_CONFIGURED = ${NOT_CONFIGURED}`),
  hot("CLASS_STEP", [], String.raw`
-- Queue score = (class + 2048) * 2^40 + (arrival + offset - base): at most 2^52, exact in a double.
local CLASS_STEP = ${CLASS_STEP}`),
  hot("BASE_LEAD", [], `local BASE_LEAD = ${BASE_LEAD}`),
  hot("STATS", [], String.raw`
local STATS = {'in_use', 'queued', 'peak_in_use', 'peak_queued', 'granted', 'rejected_full',
  'rejected_queue_full', 'queue_timeouts', 'aborted', 'expired', 'released', 'keys'}`),
  // READ is written per script by libraryFor (the base fields plus the script's own).
  hot("READ", [], `local READ = {${BASE_READ.map((f) => `'${f}'`).join(", ")}}`),

  // ── reading hashes ─────────────────────────────────────────────────────────────────────────
  hot("hmget", [], String.raw`
-- HMGET of any number of fields (unpack has a limit). With safe, a failure (a key of another
-- type) returns nil instead of raising.
local function hmget(key, fields, safe)
  local call = safe and redis.pcall or redis.call
  local out
  for i = 1, #fields, 1000 do
    local part = call('HMGET', key, unpack(fields, i, math.min(i + 999, #fields)))
    if type(part) ~= 'table' or part.err then return nil end
    if i == 1 then
      out = part
    else
      for j = 1, #part do out[i + j - 1] = part[j] end
    end
  end
  return out or {}
end`),

  // ── the spec: cfg ──────────────────────────────────────────────────────────────────────────
  hot("META", [], String.raw`local META = {} -- scope name -> {kind, max, mq}, or false: not a scope of the spec (read from cfg on first use)`),
  hot("lim", ["INF"], String.raw`
local function lim(v)
  if type(v) == 'number' then return v end
  return INF -- JSON null: no limit
end`),
  hot("fetchMeta", ["META", "hmget", "lim"], String.raw`
-- Reads, in one HMGET of cfg, the fields of extra and the limits of every name not yet known and
-- of every prefix of it that could be its keyed limit. Returns the values read (nil when there was
-- nothing to read, or, with safe, when cfg is not a hash). Field 's<scope>' = '<kind>|<max>|<maxqueue>': kind n (named), a (a
-- keyed limit's aggregate row), b (backend), s (server); an empty number means no limit.
local function fetchMeta(names, extra, safe)
  local fields, asked = extra, nil
  for i = 1, #names do
    local name = names[i]
    local p, candidate = 0, META[name] == nil and name
    while candidate do
      fields, asked = fields or {}, asked or {}
      if META[candidate] == nil and not asked[candidate] then
        asked[candidate] = true
        asked[#asked + 1] = candidate
        fields[#fields + 1] = 's' .. candidate
      end
      -- then each '<limit>' of '<limit>:<value>' (a leading ':' never matches)
      p = string.find(name, ':', p + 1, true)
      candidate = p and p > 1 and string.sub(name, 1, p - 1)
    end
  end
  if not fields then return nil end
  local raw = hmget(K_CFG, fields, safe)
  if raw and asked then
    local base = #fields - #asked
    for i = 1, #asked do
      local v = raw[base + i]
      if v then
        local kind, max, mq = string.match(v, '^(%a)|([^|]*)|(.*)$')
        META[asked[i]] = {kind = kind, max = lim(tonumber(max)), mq = lim(tonumber(mq))}
      else
        META[asked[i]] = false
      end
    end
  end
  return raw
end`),
  hot("keyedParent", ["META", "fetchMeta"], String.raw`
-- GroupState#tryKeyed: '<limit>:<value>', the shortest keyed prefix wins; a leading ':' never matches.
local function keyedParent(name)
  local p = string.find(name, ':', 1, true)
  while p and p > 1 do
    local parent = string.sub(name, 1, p - 1)
    if META[parent] == nil then fetchMeta({parent}) end
    local m = META[parent]
    if m and m.kind == 'a' then return parent, m end
    p = string.find(name, ':', p + 1, true)
  end
  return nil
end`),
  hot(["ND", "NG", "ND0", "NG0"], ["NONE"], String.raw`
-- Deadline hints, kept in cfg: ND is at or before the earliest lease expiry and queue deadline,
-- NG at or before the earliest entry of gexp (NONE: there is none). Setting a deadline lowers the
-- hint, removing one leaves it, so a hint may be early but never late: a call that runs before
-- both has nothing to settle and does not look at the zsets. ND0/NG0: as read, to write changes only.
local ND, NG, ND0, NG0 = 0, NONE, nil, nil`),
  hot("start", ["fetchMeta", "ND", "NONE"], String.raw`
-- The first read of every script: whether the group is configured ('\0nd' exists exactly when it
-- is), the deadline hints, and the limits of the scopes the call names. False when there is no spec.
local function start(names)
  local raw = fetchMeta(names or {}, {'\0nd', '\0ng'}, true)
  if not raw or not raw[1] then return false end
  ND, NG = tonumber(raw[1]), tonumber(raw[2]) or NONE
  ND0, NG0 = ND, NG
  return true
end`),
  hot("due", ["ND"], String.raw`
local function due(at) -- a lease expiry or queue deadline was set
  if at < ND then ND = at end
end`),
  cold("loadSpec", ["META", "lim"], String.raw`
-- The whole GroupSpec (kept as JSON in cfg '\0spec'), with every declared scope put in META.
local function loadSpec()
  local raw = redis.call('HGET', K_CFG, '\0spec')
  if not raw then return nil end
  local spec = cjson.decode(raw)
  for name, l in pairs(spec.limits) do
    META[name] = {kind = (l.keyed == true) and 'a' or 'n', max = lim(l.max), mq = lim(l.maxqueue)}
  end
  for bname, b in pairs(spec.backends) do
    META['backend:' .. bname] = {kind = 'b', max = lim(b.max), mq = lim(b.maxqueue)}
    for _, s in ipairs(b.servers) do
      META['server:' .. bname .. '/' .. s.name] = {kind = 's', max = lim(s.max), mq = lim(s.maxqueue)}
    end
  end
  return spec
end`),

  // ── counters ───────────────────────────────────────────────────────────────────────────────
  hot(["SC", "DIRTY"], [], String.raw`
-- A scope: {name, kind, max, mq, parent, live, and a field per counter read}, its changes in ch
-- (counter -> true: write the field whole) and dl (counter -> change, for counters not read).
local SC = {} -- scope name -> scope
local DIRTY = {} -- scopes changed since the last flush, in order`),
  hot("GRP", [], String.raw`
-- The group-wide counters, shaped as a scope named '' (no scope is): sc fields '\0<counter>'.
-- fence, seq, base, wsum, w0 and the state-loss fields (epoch, learn, blind, lstart: see detect)
-- are read with the first scopes, or by group().
local GRP = {name = '', kind = 'g', live = true, loaded = false}`),
  hot("newScope", ["SC"], String.raw`
local function newScope(name, kind, max, mq, parent)
  local s = {name = name, kind = kind, max = max, mq = mq, parent = parent, live = false}
  SC[name] = s
  return s
end`),
  hot("loadAll", ["READ", "GRP", "hmget"], String.raw`
-- Reads the READ counters of new scopes (and the group's, the first time) in one HMGET. A keyed
-- scope exists while any is stored (a live key always has in_use or queued).
local function loadAll(list)
  local n, fields, k = #READ, {}, 0
  for i = 1, #list do
    local prefix = list[i].name .. '\0'
    for j = 1, n do fields[k + j] = prefix .. READ[j] end
    k = k + n
  end
  local first = not GRP.loaded
  if first then
    fields[k + 1], fields[k + 2], fields[k + 3], fields[k + 4], fields[k + 5] = '\0fence', '\0seq', '\0base', '\0wsum', '\0w0'
    fields[k + 6], fields[k + 7], fields[k + 8], fields[k + 9] = '\0epoch', '\0learn', '\0blind', '\0lstart'
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
    k = k + n
  end
  if first then
    GRP.loaded = true
    GRP.fence, GRP.seq, GRP.base = tonumber(raw[k + 1]) or 0, tonumber(raw[k + 2]) or 0, tonumber(raw[k + 3]) or 0
    GRP.wsum, GRP.w0 = tonumber(raw[k + 4]) or 0, tonumber(raw[k + 5]) or 0
    GRP.epoch, GRP.learn = tonumber(raw[k + 6]) or 0, tonumber(raw[k + 7]) or 0
    GRP.blind, GRP.lstart = tonumber(raw[k + 8]) or 0, tonumber(raw[k + 9]) or 0
  end
end`),
  hot("group", ["GRP", "loadAll"], String.raw`
local function group()
  if not GRP.loaded then loadAll({}) end
  return GRP
end`),
  hot("prepare", ["SC", "META", "INF", "fetchMeta", "keyedParent", "newScope", "loadAll"], String.raw`
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
end`),
  hot("put", ["DIRTY"], String.raw`
local function put(s, stat, value)
  s[stat] = value
  local ch = s.ch or {}
  s.ch = ch
  ch[stat] = true
  if not s.dirty then
    s.dirty = true
    DIRTY[#DIRTY + 1] = s
  end
end`),
  hot("bump", ["DIRTY", "put"], String.raw`
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
end`),
  hot("scope", ["SC", "prepare", "bump"], String.raw`
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
end`),
  hot("held", ["SC", "scope", "prepare"], String.raw`
-- A scope some lease or ticket holds: known to the spec, or one a reconfiguration removed ('x').
local function held(name)
  local s = scope(name)
  if s then return s end
  if not SC[name] then prepare({name}, true) end
  return SC[name]
end`),
  hot("room", [], String.raw`local function room(s) return s.in_use < s.max and s.kind ~= 'x' end`),
  hot("parentOf", ["scope"], String.raw`
local function parentOf(s)
  if s.parent then return scope(s.parent) end
  return nil
end`),
  hot("take", ["bump", "put", "parentOf"], String.raw`
local function take(s)
  while s do
    bump(s, 'in_use', 1)
    bump(s, 'granted', 1)
    if s.in_use > s.peak_in_use then put(s, 'peak_in_use', s.in_use) end
    s = parentOf(s)
  end
end`),
  hot("give", ["room", "bump", "parentOf"], String.raw`
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
end`),
  cold("qfull", [], String.raw`local function qfull(s) return s.queued >= s.mq end`),
  cold("enqueue", ["bump", "put", "parentOf"], String.raw`
local function enqueue(s)
  while s do
    bump(s, 'queued', 1)
    if s.queued > s.peak_queued then put(s, 'peak_queued', s.queued) end
    s = parentOf(s)
  end
end`),
  cold("dequeue", ["bump", "parentOf"], String.raw`
local function dequeue(s, how)
  while s do
    bump(s, 'queued', -1)
    if how then bump(s, how, 1) end
    s = parentOf(s)
  end
end`),
  cold("count", ["bump", "parentOf"], String.raw`
local function count(s, counter)
  while s do
    bump(s, counter, 1)
    s = parentOf(s)
  end
end`),
  hot("collect", ["STATS", "scope", "put", "bump"], String.raw`
-- GroupState#collect: keyed scopes nobody holds or waits on are dropped. Their counters restart at
-- 0: flush deletes them, or writes them whole if the key comes back within the same call.
local function collect(list)
  for i = 1, #list do
    local s = list[i]
    if s.kind == 'k' and s.live and s.in_use == 0 and s.queued == 0 then
      s.live = false
      s.dl = nil
      for j = 1, #STATS do put(s, STATS[j], 0) end
      bump(scope(s.parent), 'keys', -1)
    end
  end
end`),
  hot("recordWait", ["BOUNDS", "group", "bump"], String.raw`
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
end`),

  // ── backends and balancing (balance.ts) ────────────────────────────────────────────────────
  hot("BK", [], `local BK = {}`),
  hot("srvField", [], String.raw`local function srvField(bname, sname, f) return bname .. '/' .. sname .. '\0' .. f end`),
  cold("backend", ["BK", "META", "lim", "srvField", "hmget", "prepare", "scope"], String.raw`
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
end`),
  cold("eligible", ["room"], String.raw`local function eligible(sv) return sv.up and room(sv.sc) end`),
  cold("choose", ["INF", "eligible"], String.raw`
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
end`),
  cold("commit", ["eligible"], String.raw`
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
end`),

  // ── write-back ─────────────────────────────────────────────────────────────────────────────
  hot("hsetChunks", [], String.raw`
local function hsetChunks(key, args)
  for i = 1, #args, 200 do redis.call('HSET', key, unpack(args, i, math.min(i + 199, #args))) end
end`),
  hot("flush", ["DIRTY", "STATS", "BK", "srvField", "ND", "hsetChunks"], String.raw`
local function flush()
  local set, del = {}, {}
  for i = 1, #DIRTY do
    local s = DIRTY[i]
    local name = s.name
    s.dirty = false
    if (s.kind == 'k' and not s.live) or (s.kind == 'x' and s.in_use == 0 and s.queued == 0) then
      -- Idle keys, and idle scopes a reconfiguration removed, leave the hash (core: #collect/retire).
      for j = 1, #STATS do del[#del + 1] = name .. '\0' .. STATS[j] end
    else
      local keys = s.kind == 'a' -- only a keyed limit's aggregate row counts keys
      if s.ch then
        for st in pairs(s.ch) do
          if keys or st ~= 'keys' then
            set[#set + 1] = name .. '\0' .. st
            set[#set + 1] = s[st]
          end
        end
      end
      if s.dl then
        for st, d in pairs(s.dl) do
          if d ~= 0 and (keys or st ~= 'keys') then redis.call('HINCRBY', K_SC, name .. '\0' .. st, d) end
        end
      end
    end
    s.ch, s.dl = nil, nil
  end
  DIRTY = {}
  hsetChunks(K_SC, set)
  for i = 1, #del, 200 do redis.call('HDEL', K_SC, unpack(del, i, math.min(i + 199, #del))) end
  local srv
  for bname, b in pairs(BK) do
    if b.dirty then
      b.dirty = false
      srv = srv or {}
      srv[#srv + 1] = bname .. '\0last'
      srv[#srv + 1] = b.last
      for _, sv in ipairs(b.servers) do
        srv[#srv + 1] = srvField(bname, sv.name, 'cw')
        srv[#srv + 1] = sv.cw
      end
    end
  end
  if srv then hsetChunks(K_SRV, srv) end
  if ND ~= ND0 or NG ~= NG0 then
    redis.call('HSET', K_CFG, '\0nd', ND, '\0ng', NG)
    ND0, NG0 = ND, NG
  end
end`),

  // ── leases and outcomes ────────────────────────────────────────────────────────────────────
  cold("outcome", ["group"], String.raw`
-- The grant message for the waiter of ticket: lease id, the lease record, its expiry, and the
-- group's epoch (a string, as the fence: cjson precision).
local function outcome(ticket, leaseId, rec, exp)
  return cjson.encode({k = ticket, o = 'g', l = leaseId, f = rec.f, x = exp, t = rec.t, w = rec.w, b = rec.b, s = rec.s, e = string.format('%d', group().epoch)})
end`),
  cold("keep", ["ND"], String.raw`
-- Keeps an outcome for a ticket's waiter until it is claimed or at, so a lost message cannot
-- strand it. A grant needs no copy while its lease lives: the waiter claims it through the lease
-- record, which names the ticket (k) until the holder renews it.
local function keep(ticket, msg, at)
  redis.call('HSET', K_GRANTS, ticket, msg)
  redis.call('ZADD', K_GEXP, at, ticket)
  if at < NG then NG = at end
end`),
  hot(["LOCAL", "LOCAL_CH"], [], String.raw`
-- Wake-ups for the caller's own node (channel LOCAL_CH, set by a script that returns them in its
-- reply) are collected in LOCAL instead of published.
local LOCAL, LOCAL_CH = {}, nil`),
  cold("wake", ["LOCAL"], String.raw`
local function wake(t, msg)
  if t.ch == LOCAL_CH then
    LOCAL[#LOCAL + 1] = msg
  elseif t.sh == 1 then
    redis.call('SPUBLISH', t.ch, msg)
  else
    redis.call('PUBLISH', t.ch, msg)
  end
end`),
  cold("leaseOutcome", ["outcome"], String.raw`
-- The grant of ticket as its waiter would have heard it, while its lease lives and is unrenewed.
local function leaseOutcome(ticket, leaseId)
  if leaseId == nil or leaseId == '' then return nil end
  local raw = redis.call('HGET', K_LEASE, leaseId)
  if not raw then return nil end
  local rec = cjson.decode(raw)
  if rec.k ~= ticket then return nil end
  return outcome(ticket, leaseId, rec, rec.g + rec.t)
end`),
  // ── state loss (SPEC §2 rule 12) ────────────────────────────────────────────────────────
  cold("learn", ["group", "put", "due"], String.raw`
-- Starts (or extends) a learning window: a new epoch, no grant until NOW + win, during which
-- holders re-register their leases (renew). kf, ke: the highest fence and the epoch the caller
-- knows, which the counter and the new epoch must not fall below.
local function learn(win, kf, ke)
  local g = group()
  put(g, 'epoch', math.max(NOW * 1000, g.epoch + 1, ke + 1))
  put(g, 'blind', 0)
  if g.learn == 0 then put(g, 'lstart', NOW) end
  local untilAt = math.max(g.learn, NOW + win)
  put(g, 'learn', untilAt)
  if kf > g.fence then put(g, 'fence', kf) end
  due(untilAt)
end`),
  hot("detect", ["group", "put", "learn"], String.raw`
-- Rule 12: finds out whether the group's state was lost or replaced since the caller last saw it.
-- ke: the group epoch the caller knows (0: none), kf: the highest fence it knows, win: its longest
-- lease TTL. The epoch is set when the state is created and changed by every learning window, so
-- - no epoch, and the caller knew one: the state was lost (FLUSHALL, a restart empty);
-- - a caller that knows a later epoch, or a higher fence than the counter: the state went back
--   (a replica that missed writes was promoted);
-- - an epoch created by a caller that knew nothing (a fresh node after a loss), and a caller that
--   knew an older one: the loss is found late, still before the holders' leases are doubled.
-- Each of these starts a learning window; a group created by a caller that knew nothing is 'blind'.
local function detect(ke, kf, win)
  local g = group()
  local e = g.epoch
  if e == 0 then
    if ke ~= 0 then return cold().learn(win, kf, ke) end
    put(g, 'epoch', NOW * 1000)
    put(g, 'blind', 1)
  elseif ke > e or (ke == e and kf > g.fence) or (ke ~= 0 and ke < e and g.blind == 1) then
    cold().learn(win, kf, ke)
  end
end`),
  hot("grant", ["group", "put", "take", "due", "recordWait", "commit"], String.raw`
-- GroupState#grant. fixed: scope objects; sv: the server taken (nil if none); balanced: sv was
-- chosen by the backend's balance, not pinned. ticket: the ticket granted, nil for an immediate
-- grant, which fails (nil) when the lease id is already in use. Returns the lease record.
local function grant(fixed, b, sv, balanced, ttl, waited, leaseId, ticket)
  local chain = fixed
  if sv and b and balanced then
    chain = {}
    for i = 1, #fixed do chain[i] = fixed[i] end
    chain[#chain + 1] = sv.sc
  end
  local names = {}
  for i = 1, #chain do names[i] = chain[i].name end
  local g = group()
  -- Rule 10 through data loss and failover: a fence is above the last one stored and at least the
  -- store clock in µs-scale, so a counter that was lost or went back (a replica that missed
  -- writes) never reissues a fence (unless the group averaged over 1M grants/s, or the new
  -- server's clock is behind). The record carries it as a decimal string: cjson keeps only 14
  -- significant digits.
  local fence = math.max(g.fence + 1, NOW * 1000)
  local rec = {c = names, f = string.format('%d', fence), g = NOW, t = ttl}
  if ticket then rec.k, rec.w = ticket, waited end
  if b then rec.b = b.name end
  if sv then rec.s = sv.name end
  if ticket then
    redis.call('HSET', K_LEASE, leaseId, cjson.encode(rec))
  elseif redis.call('HSETNX', K_LEASE, leaseId, cjson.encode(rec)) == 0 then
    return nil
  end
  if sv and b and balanced then cold().commit(b, sv) end
  for i = 1, #chain do take(chain[i]) end
  put(g, 'fence', fence)
  redis.call('ZADD', K_LEASES, NOW + ttl, leaseId)
  due(NOW + ttl)
  recordWait(waited)
  return rec
end`),
  hot("ENDED", [], `local ENDED = {} -- lease id -> true: ended in this call`),
  hot("endLease", ["ENDED", "prepare", "held", "give", "collect"], String.raw`
-- GroupState#endLease (how: 'released' or 'expired'): returns the scopes that went from full to
-- having room (name -> scope), or nil when none did.
local function endLease(id, rec, how)
  redis.call('HDEL', K_LEASE, id)
  redis.call('ZREM', K_LEASES, id)
  ENDED[id] = true
  prepare(rec.c, true)
  local chain, opened = {}, nil
  for i, name in ipairs(rec.c) do
    local s = held(name)
    chain[i] = s
    if give(s, how) then
      opened = opened or {}
      opened[name] = s
    end
  end
  collect(chain)
  return opened
end`),

  // ── tickets ────────────────────────────────────────────────────────────────────────────────
  cold("loadTicket", ["prepare", "held", "backend"], String.raw`
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
end`),
  cold("removeTicket", [], String.raw`
local function removeTicket(id)
  redis.call('ZREM', K_QUEUE, id)
  redis.call('HDEL', K_TICKETS, id)
  redis.call('ZREM', K_TDL, id)
end`),
  hot("fit", ["room", "choose"], String.raw`
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
  local sv = cold().choose(bk)
  if sv then return true, sv end
  return false
end`),
  cold("touches", [], String.raw`
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
end`),
  cold("allFull", ["room"], String.raw`
local function allFull(opened)
  for _, s in pairs(opened) do
    if room(s) then return false end
  end
  return true
end`),
  cold("dispatch", ["group", "removeTicket", "loadTicket", "touches", "fit", "dequeue", "grant", "wake", "outcome", "allFull"], String.raw`
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
end`),
  cold("settle", ["ND", "NONE", "GRANT_KEEP_MS", "group", "put", "removeTicket", "loadTicket", "dequeue", "collect", "keep", "wake", "outcome", "dispatch", "endLease"], String.raw`
-- GroupState#advance: settles every deadline <= NOW in time order, as if each had been handled at
-- its own moment (a queue timeout first at the same instant), dispatching after each expiry; then
-- drops outcomes nobody claimed in time. The end of a learning window (rule 12) is one of these
-- deadlines: from then on the queue is dispatched again. Leaves the hints exact.
local function settle()
  local g = group()
  while NOW >= ND do
    local t = redis.call('ZRANGE', K_TDL, 0, 0, 'WITHSCORES')
    local l = redis.call('ZRANGE', K_LEASES, 0, 0, 'WITHSCORES')
    local tAt = t[2] and tonumber(t[2]) or nil
    local lAt = l[2] and tonumber(l[2]) or nil
    local eAt = g.learn ~= 0 and g.learn or nil
    local tDue = tAt ~= nil and tAt <= NOW
    local lDue = lAt ~= nil and lAt <= NOW
    if eAt ~= nil and eAt <= NOW and (not tDue or eAt < tAt) and (not lDue or eAt < lAt) then
      put(g, 'learn', 0)
      dispatch(nil)
    elseif tDue and (not lDue or tAt <= lAt) then
      local id = t[1]
      local raw = redis.call('HGET', K_TICKETS, id)
      removeTicket(id)
      if raw then
        local tk = loadTicket(id, raw)
        for _, s in ipairs(tk.fx) do dequeue(s, 'queue_timeouts') end
        collect(tk.fx)
        local msg = cjson.encode({k = id, o = 't'})
        keep(id, msg, math.max(tk.d, NOW) + GRANT_KEEP_MS)
        wake(tk, msg)
      end
    elseif lDue then
      local id = l[1]
      local raw = redis.call('HGET', K_LEASE, id)
      if raw then
        local rec = cjson.decode(raw)
        if rec.k then
          -- Granted from the queue and never renewed: its waiter may not have heard (a lost
          -- message) and can still claim the grant, now of an expired lease.
          keep(rec.k, outcome(rec.k, id, rec, rec.g + rec.t), NOW + GRANT_KEEP_MS)
        end
        local opened = endLease(id, rec, 'expired')
        if opened then dispatch(opened) end
      end
      redis.call('ZREM', K_LEASES, id)
    else
      ND = math.min(tAt or NONE, lAt or NONE, eAt or NONE)
    end
  end
  if NOW >= NG then
    local stale = redis.call('ZRANGEBYSCORE', K_GEXP, '-inf', NOW, 'LIMIT', 0, 256)
    if #stale > 0 then
      redis.call('HDEL', K_GRANTS, unpack(stale))
      redis.call('ZREM', K_GEXP, unpack(stale))
    end
    if #stale < 256 then
      local g = redis.call('ZRANGE', K_GEXP, 0, 0, 'WITHSCORES')
      NG = g[2] and tonumber(g[2]) or NONE
    end
  end
end`),
  hot("advance", ["ND", "settle"], String.raw`
-- GroupState#advance; nothing to do before the hints.
local function advance()
  if NOW >= ND or NOW >= NG then cold().settle() end
end`),
  hot("nextIn", ["ND", "NONE"], String.raw`
-- ms until the next lease expiry or queue deadline (or earlier: the hint), -1 when there is none.
local function nextIn()
  if ND >= NONE then return -1 end
  return math.max(0, ND - NOW)
end`),
];

// ── the tree-shake ─────────────────────────────────────────────────────────────────────────────

/** Lua code without comments and string literals, so that only real uses of names remain. */
function codeOnly(lua: string): string {
  return lua
    .replace(/--\[(=*)\[[\s\S]*?\]\1\]/g, " ")
    .replace(/--[^\n]*/g, " ")
    .replace(/'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"/g, " ");
}

const DEFINED_BY = new Map<string, Unit>();
for (const u of UNITS) {
  for (const name of u.defines) {
    if (DEFINED_BY.has(name) || name === "cold" || name === "COLD") throw new Error(`lua unit ${name}: defined twice`);
    DEFINED_BY.set(name, u);
  }
}
const PRELUDE_LOCALS = new Set([...KEY_NAMES, "NOW"]);

interface Uses {
  /** Units used by name. */
  direct: Set<Unit>;
  /** Cold units called as `cold().name`. */
  viaCold: Set<Unit>;
  /** Prelude locals used (what a function captures). */
  prelude: Set<string>;
}

function uses(lua: string, self?: Unit): Uses {
  const code = codeOnly(lua);
  const out: Uses = { direct: new Set(), viaCold: new Set(), prelude: new Set() };
  for (const m of code.matchAll(/(?<![.:\w])[A-Za-z_]\w*/g)) {
    const u = DEFINED_BY.get(m[0]);
    if (u && u !== self) out.direct.add(u);
    if (PRELUDE_LOCALS.has(m[0])) out.prelude.add(m[0]);
  }
  for (const m of code.matchAll(/(?<![.:\w])cold\(\)\.([A-Za-z_]\w*)/g)) {
    const u = DEFINED_BY.get(m[1]!);
    if (!u?.cold) throw new Error(`lua: cold().${m[1]} is not a cold unit`);
    out.viaCold.add(u);
  }
  return out;
}

/** A hot unit or a script body may use hot units by name and cold ones only through cold(). */
function checkHotUses(what: string, used: Uses): void {
  for (const u of used.direct) if (u.cold) throw new Error(`lua ${what}: uses the cold ${u.defines[0]} by name; call cold().${u.defines[0]}(...)`);
}

// Every declaration matches the code, at module load: a unit that uses another without declaring
// it (or declares one it does not use) is a bug in this file.
for (const u of UNITS) {
  const name = u.defines[0]!;
  const used = uses(u.code, u);
  if (u.cold && used.viaCold.size > 0) throw new Error(`lua unit ${name}: a cold unit calls cold units by name`);
  if (!u.cold) checkHotUses(`unit ${name}`, used);
  const all = new Set([...used.direct, ...used.viaCold]);
  const declared = new Set(u.deps.map((d) => {
    const dep = DEFINED_BY.get(d);
    if (!dep) throw new Error(`lua unit ${name}: unknown dependency ${d}`);
    // Defined before use (a script may define both inside cold()), unless called through cold().
    if (used.direct.has(dep) && UNITS.indexOf(dep) >= UNITS.indexOf(u)) throw new Error(`lua unit ${name}: ${d} must come first`);
    return dep;
  }));
  for (const dep of all) if (!declared.has(dep)) throw new Error(`lua unit ${name}: uses ${dep.defines[0]} without declaring it`);
  for (const dep of declared) if (!all.has(dep)) throw new Error(`lua unit ${name}: declares ${dep.defines[0]} but does not use it`);
}

/** The library units lua (a fast path, which must not) uses by name. */
export function libraryUses(lua: string): string[] {
  const used = uses(lua);
  return [...used.direct, ...used.viaCold].map((u) => u.defines[0]!);
}

/** Lua 5.1 allows 60 upvalues per function. */
const MAX_UPVALUES = 60;

/**
 * The library part of a script (after the prelude): in library order, every hot unit the body
 * reaches, then `cold()` with every cold one. `read` adds counters to the scopes' `READ`.
 */
export function libraryFor(body: string, read: readonly string[] = []): string {
  const bodyUses = uses(body);
  checkHotUses("script body", bodyUses);
  // Hot: what the body reaches by name, and what that reaches by name. Cold: all else it reaches,
  // through cold() (units marked cold are always reached that way), defined inside cold().
  const hotSet = new Set<Unit>();
  const coldSet = new Set<Unit>();
  const visit = (u: Unit, asHot: boolean) => {
    if (asHot ? hotSet.has(u) : hotSet.has(u) || coldSet.has(u)) return;
    (asHot ? hotSet : coldSet).add(u);
    if (asHot) coldSet.delete(u);
    const used = uses(u.code, u);
    for (const d of used.direct) visit(d, asHot);
    for (const d of used.viaCold) visit(d, false);
  };
  for (const u of bodyUses.direct) visit(u, true);
  for (const u of bodyUses.viaCold) visit(u, false);

  const fields = [...BASE_READ, ...read.filter((f) => !(BASE_READ as readonly string[]).includes(f))];
  const hotUnits = UNITS.filter((u) => hotSet.has(u));
  const coldUnits = UNITS.filter((u) => coldSet.has(u));
  const parts: string[] = [];
  if (coldUnits.length > 0) parts.push("local cold -- the functions of the slower paths, made on first use (below)");
  for (const u of hotUnits) parts.push(u.defines[0] === "READ" ? `local READ = {${fields.map((f) => `'${f}'`).join(", ")}}` : u.code);
  if (coldUnits.length > 0) {
    const exported = new Set<Unit>(bodyUses.viaCold);
    for (const u of [...hotUnits, ...coldUnits]) for (const c of uses(u.code, u).viaCold) exported.add(c);
    // What cold() captures from outside: hot units and prelude locals its units use.
    const captured = new Set<string>(["COLD"]);
    for (const u of coldUnits) {
      const used = uses(u.code, u);
      for (const d of used.direct) if (hotSet.has(d)) d.defines.forEach((n) => captured.add(n));
      used.prelude.forEach((n) => captured.add(n));
    }
    if (captured.size > MAX_UPVALUES) throw new Error(`lua: cold() would capture ${captured.size} locals (Lua allows ${MAX_UPVALUES})`);
    parts.push(
      "local COLD",
      "cold = function()",
      "  if COLD then return COLD end",
      ...coldUnits.map((u) => u.code.replace(/^/gm, "  ")),
      `  COLD = {${[...exported].map((u) => `${u.defines[0]} = ${u.defines[0]}`).join(", ")}}`,
      "  return COLD",
      "end",
    );
  }
  return parts.join("\n");
}
