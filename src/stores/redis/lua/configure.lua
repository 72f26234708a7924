--[[
  slotgateConfigure: replaces the group's limits (GroupState.configure) under the version rule (decideSpec in core/spec-version.ts); counters and holders are kept.
  Input:
    KEYS[1] cfg, KEYS[2] sc, KEYS[3] srv, KEYS[4] leases, KEYS[5] lease, KEYS[6] queue,
    KEYS[7] tickets, KEYS[8] tdl, KEYS[9] grants, KEYS[10] gexp, KEYS[11] waits, KEYS[12] flows: the group's keys,
      the same for every script (what each holds: KEY_LAYOUT in src/stores/redis/keys.ts)
    ARGV[1]  the GroupSpec as canonical JSON (sorted keys: equal specs are equal strings)
    ARGV[2]  its version, a positive integer, or '' (unversioned)
  Output:
    {INSTALLED, nextIn}                    installed (or re-installed: the same version and spec)
    {KEPT, -1, storedVersion}              the stored spec has a higher version (or is versioned and this push is not)
    {SPEC_CONFLICT, -1, storedVersion, spec}  refused: the same version with another spec (the stored spec as JSON)
    (codes: includes/replies.lua)
]]
--- @include "includes/prelude"
--- @include "includes/replies"
--- @include "includes/settle"
--- @include "includes/flush"

local spec = ARGV[1]
local version = tonumber(ARGV[2])
local old
local configured = start()
if configured then
  -- Rule 13, before anything is written: an unversioned stored spec is replaced by any push.
  local stored = redis.call('HMGET', K_CFG, '\0ver', '\0spec')
  local sv = tonumber(stored[1])
  if sv then
    if not version or version < sv then return {KEPT, -1, stored[1]} end
    if version == sv and stored[2] ~= spec then return {SPEC_CONFLICT, -1, stored[1], stored[2]} end
  end
  advance() -- deadlines up to now are settled under the limits they were set with
  flush()
  old = loadSpec()
end
local new = decodeSpec(spec)

-- cfg is written whole: the spec, each scope's limits (a backend or server wins over a limit of
-- the same name), each backend's spec, then (by flush) the deadline hints.
local function num(v)
  if type(v) == 'number' then return string.format('%.17g', v) end
  return ''
end
local fields = {'\0spec', spec}
if version then
  fields[#fields + 1] = '\0ver'
  fields[#fields + 1] = ARGV[2]
end
local function limitField(name, kind, max, mq)
  fields[#fields + 1] = 's' .. name
  fields[#fields + 1] = kind .. '|' .. num(max) .. '|' .. num(mq)
end
for name, l in pairs(new.limits) do limitField(name, (l.keyed == true) and 'a' or 'n', l.max, l.maxqueue) end
for bname, b in pairs(new.backends) do
  limitField('backend:' .. bname, 'b', b.max, b.maxqueue)
  for _, s in ipairs(b.servers) do limitField('server:' .. bname .. '/' .. s.name, 's', s.max, s.maxqueue) end
end
for bname, b in pairs(new.backends) do
  fields[#fields + 1] = 'b' .. bname
  fields[#fields + 1] = cjson.encode(b)
end
-- Rules D and F: the discipline, and each listed flow's weight (a flow not listed weighs 1).
local queue = type(new.queue) == 'table' and new.queue or nil
if queue then
  fields[#fields + 1] = '\0q'
  fields[#fields + 1] = string.format('%s|%d|%d', queue.discipline, queue.targetMs, queue.intervalMs)
  if type(queue.flowWeights) == 'table' then
    for flow, w in pairs(queue.flowWeights) do
      fields[#fields + 1] = 'f' .. flow
      fields[#fields + 1] = w
    end
  end
end
-- The test-only clock (see includes/prelude.lua) stays.
local clock = redis.pcall('HGET', K_CFG, '\0clock')
if type(clock) == 'string' then
  fields[#fields + 1] = '\0clock'
  fields[#fields + 1] = clock
end
redis.call('DEL', K_CFG)
hsetChunks(K_CFG, fields)

for bname, b in pairs(new.backends) do
  local declared = {}
  for _, s in ipairs(b.servers) do
    declared[s.name] = true
    -- The runtime up flag follows the spec only when the spec's own down flag changed.
    local down = (s.down == true) and '1' or '0'
    if redis.call('HGET', K_SRV, srvField(bname, s.name, 'sd')) ~= down then
      redis.call('HSET', K_SRV, srvField(bname, s.name, 'sd'), down,
        srvField(bname, s.name, 'up'), (down == '1') and '0' or '1')
    end
  end
  -- A server dropped from the backend loses its state; if it comes back, it starts afresh.
  local was = old and old.backends[bname]
  if was then
    for _, s in ipairs(was.servers) do
      if not declared[s.name] then
        redis.call('HDEL', K_SRV, srvField(bname, s.name, 'sd'), srvField(bname, s.name, 'up'),
          srvField(bname, s.name, 'cw'))
      end
    end
  end
  local last = tonumber(redis.call('HGET', K_SRV, bname .. '\0last'))
  if last and last > #b.servers - 1 then redis.call('HSET', K_SRV, bname .. '\0last', #b.servers - 1) end
end

-- From here on, everything is read under the new spec. The hints went with the old cfg: flush
-- writes them again. A group that had no spec has them checked from scratch.
SC, BK, META = {}, {}, {}
ND0, NG0 = nil, nil
if not configured then ND, NG = 0, 0 end
QD, QT, QI, QSET = 'fifo', 5, 100, false
WEIGHTS = {}
if queue then readQueue(string.format('%s|%d|%d', queue.discipline, queue.targetMs, queue.intervalMs)) end
-- fifo keeps no standing detector; a standing one under codel or lifo is a deadline (settle).
local g = group()
if QD == 'fifo' and g.above ~= -1 then put(g, 'above', -1) end
if QD ~= 'fifo' and g.above ~= -1 then due(g.above + QI) end
advance()
dispatch(nil)
flush()
return {INSTALLED, nextIn()}
