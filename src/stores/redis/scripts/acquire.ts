import { defineScript } from "./define.js";

export const acquire = defineScript(
  "slotgateAcquire",
  "grants at once (GroupState.acquire), rejects at once, or queues a ticket.",
  `    ARGV[1]  lease id to grant under (random, chosen by the client)
    ARGV[2]  channel that wakes the caller's node, stored with a ticket
    ARGV[3]  1: wake with SPUBLISH (cluster), 0: PUBLISH
    ARGV[4]  priority class (-2047..2047)
    ARGV[5]  priority offset ms (-524287..524287)
    ARGV[6]  queue timeout ms (0: never queue)
    ARGV[7]  lease TTL ms
    ARGV[8]  backend name, '' for none
    ARGV[9]  pinned server name, '' for none
    ARGV[10..] named and keyed scope names`,
  `    {1, leaseId, fence, backend|'', server|'', expiresAt, ttlMs, nextIn}  granted
    {2, 'full'|'queue-full', nextIn}                                        rejected
    {3, ticketId, queueTimeoutMs, nextIn}                                   queued
    {-1, i}  scope ARGV[9+i] is unknown      {-2, backend} unknown backend
    {-3, 'backend/server'} unknown server    {-4, detail} bad request
    {-100}   the group has no spec`,
  String.raw`
local leaseId, channel, sharded = ARGV[1], ARGV[2], tonumber(ARGV[3])
local cls, offset = tonumber(ARGV[4]), tonumber(ARGV[5])
local queueTimeout, ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local bname, pname = ARGV[8], ARGV[9]

if not loadCfg() then return {NOT_CONFIGURED} end
if redis.call('HEXISTS', K_LEASE, leaseId) == 1 then return {-4, 'lease id in use'} end
advance()

local fixed = {}
local function fail(code, detail)
  collect(fixed)
  flush()
  return {code, detail}
end

for i = 10, #ARGV do
  local name = ARGV[i]
  local m = META[name]
  if m and m.kind ~= 'n' then return fail(-1, i - 9) end
  local s = scope(name)
  if not s then return fail(-1, i - 9) end
  fixed[#fixed + 1] = s
end
local b, p
if bname ~= '' then b = bname end
if pname ~= '' then p = pname end
local bk, pn
if b then
  bk = backend(b)
  if not bk then return fail(-2, b) end
  fixed[#fixed + 1] = bk.scope
  if p then
    for _, sv in ipairs(bk.servers) do
      if sv.name == p then pn = sv end
    end
    if not pn then return fail(-3, b .. '/' .. p) end
    fixed[#fixed + 1] = pn.scope
  end
end

local ok, sv = fit(fixed, b, bk, p, pn)
if ok then
  local l = grant(fixed, bk, sv, p == nil, ttl, 0, leaseId, nil)
  flush()
  return {1, l.id, l.fence, l.b or '', l.s or '', l.exp, l.ttl, nextIn()}
end

if queueTimeout <= 0 then
  -- GroupState#countRejection: every full scope; else (no server up) the backend or pinned server.
  local counted = false
  for _, s in ipairs(fixed) do
    if not room(s) then
      count(s, 'rejected_full')
      counted = true
    end
  end
  if not counted then
    local s = (pn and pn.scope) or (bk and bk.scope)
    if s then count(s, 'rejected_full') end
  end
  collect(fixed)
  flush()
  return {2, 'full', nextIn()}
end

local queueFull = false
for _, s in ipairs(fixed) do
  if qfull(s) then queueFull = true end
end
if queueFull then
  for _, s in ipairs(fixed) do
    if qfull(s) then count(s, 'rejected_queue_full') end
  end
  collect(fixed)
  flush()
  return {2, 'queue-full', nextIn()}
end

-- Enqueue. Scores are relative to a base set whenever the queue is empty, so they stay far
-- below 2^40 however long the group lives.
if redis.call('ZCARD', K_QUEUE) == 0 then redis.call('HSET', K_META, 'base', NOW - BASE_LEAD) end
local base = tonumber(redis.call('HGET', K_META, 'base'))
local seq = redis.call('HINCRBY', K_META, 'seq', 1)
local id = string.format('%016d', seq)
local rel = math.min(math.max(NOW + offset - base, 0), CLASS_STEP - 1)
local names = {}
for i, s in ipairs(fixed) do
  enqueue(s)
  names[i] = s.name
end
local t = {s = names, b = b, p = p, e = NOW, d = NOW + queueTimeout, t = ttl, l = leaseId, ch = channel, sh = sharded}
redis.call('HSET', K_TICKETS, id, cjson.encode(t))
redis.call('ZADD', K_QUEUE, (cls + 2048) * CLASS_STEP + rel, id)
redis.call('ZADD', K_TDL, t.d, id)
flush()
return {3, id, queueTimeout, nextIn()}
`,
);
