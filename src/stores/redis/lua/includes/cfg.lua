--[[
  The spec (key cfg): limits per scope, read once per call into META, the deadline hints ND/NG,
  and start(), the first read of every script.
]]
--- @include "constants"

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
end

local META = {} -- scope name -> {kind, max, mq}, or false: not a scope of the spec (read from cfg on first use)

local function lim(v)
  if type(v) == 'number' then return v end
  return INF -- JSON null: no limit
end

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
end

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
end

-- Deadline hints, kept in cfg: ND is at or before the earliest lease expiry and queue deadline,
-- NG at or before the earliest entry of gexp (NONE: there is none). Setting a deadline lowers the
-- hint, removing one leaves it, so a hint may be early but never late: a call that runs before
-- both has nothing to settle and does not look at the zsets. ND0/NG0: as read, to write changes only.
local ND, NG, ND0, NG0 = 0, NONE, nil, nil

-- The first read of every script: whether the group is configured ('\0nd' exists exactly when it
-- is), the deadline hints, the test-only clock, and the limits of the scopes the call names. False
-- when there is no spec.
-- The queue's discipline (rule D): QD 'fifo', 'codel' or 'lifo', its target QT and interval QI
-- (ms), from cfg '\0q' ('<discipline>|<target>|<interval>'; absent: fifo).
-- QSET: the spec has a queue section (stats report the discipline only then).
local QD, QT, QI, QSET = 'fifo', 5, 100, false

local function readQueue(raw)
  if not raw then return end
  local d, t, i = string.match(raw, '^(%a+)|(%d+)|(%d+)$')
  if d then QD, QT, QI, QSET = d, tonumber(t), tonumber(i), true end
end

local function start(names)
  local raw = fetchMeta(names or {}, {'\0nd', '\0ng', '\0clock', '\0q'}, true)
  if raw then NOW = tonumber(raw[3]) or NOW end -- the test-only clock (prelude)
  if not raw or not raw[1] then return false end
  ND, NG = tonumber(raw[1]), tonumber(raw[2]) or NONE
  ND0, NG0 = ND, NG
  readQueue(raw[4])
  return true
end

local function due(at) -- a lease expiry or queue deadline was set
  if at < ND then ND = at end
end

-- A spec's JSON, decoded. Flow names (the keys of queue.flowWeights) may hold lone surrogates,
-- which JSON.stringify writes as escapes that cjson refuses: each becomes the WTF-8 bytes the
-- store sends the same name as (src/stores/redis/wtf8.ts), so a weight's name is the acquire's.
local function decodeSpec(raw)
  if not string.find(raw, '\\u[dD][89a-fA-F]') then return cjson.decode(raw) end
  local out, from, i = {}, 1, 1
  while true do
    local p = string.find(raw, '\\', i, true)
    if not p then break end
    local cp = string.sub(raw, p + 1, p + 1) == 'u' and tonumber(string.sub(raw, p + 2, p + 5), 16)
    if cp and cp >= 0xD800 and cp <= 0xDFFF then
      out[#out + 1] = string.sub(raw, from, p - 1)
      out[#out + 1] = string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
      from = p + 6
    end
    i = p + 2 -- an escaped backslash is not the start of an escape
  end
  out[#out + 1] = string.sub(raw, from)
  return cjson.decode(table.concat(out))
end

-- The whole GroupSpec (kept as JSON in cfg '\0spec'), with every declared scope put in META.
local function loadSpec()
  local raw = redis.call('HGET', K_CFG, '\0spec')
  if not raw then return nil end
  local spec = decodeSpec(raw)
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
end
