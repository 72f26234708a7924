--[[
  slotgateAcquire: grants at once (GroupState.acquire), rejects at once, or queues a ticket.
  Input:
    KEYS[1] cfg, KEYS[2] sc, KEYS[3] srv, KEYS[4] leases, KEYS[5] lease, KEYS[6] queue,
    KEYS[7] tickets, KEYS[8] tdl, KEYS[9] grants, KEYS[10] gexp, KEYS[11] waits, KEYS[12] flows: the group's keys,
      the same for every script (what each holds: KEY_LAYOUT in src/stores/redis/keys.ts)
    ARGV[1]  lease id to grant under (random, chosen by the client)
    ARGV[2]  channel that wakes the caller's node, stored with a ticket
    ARGV[3]  1: wake with SPUBLISH (cluster), 0: PUBLISH
    ARGV[4]  priority class (-2047..2047)
    ARGV[5]  priority offset ms (-524287..524287)
    ARGV[6]  queue timeout ms (0: never queue)
    ARGV[7]  lease TTL ms
    ARGV[8]  backend name, '' for none
    ARGV[9]  pinned server name, '' for none
    ARGV[10] the group epoch the caller last saw (0: none)    } rule 12: finding out
    ARGV[11] the highest fence the caller has seen (0: none)  } that the state was lost
    ARGV[12] the caller's longest lease TTL ms (the learning window it starts)
    ARGV[13..] named and keyed scope names; or, when ARGV[13] is '\0' (no scope name is):
    ARGV[14] the flow (rule F, '' for none), ARGV[15] early rejection (rule E): 1 or 0, then
    ARGV[16..] the scope names
  Output:
    {GRANTED, leaseId, fence, backend|'', server|'', expiresAt, ttlMs, nextIn, epoch}
    {REJECTED, 'full'|'queue-full', nextIn, epoch}
    {REJECTED_EARLY, retryAfterMs, nextIn, epoch}  (early) its estimated wait exceeds its queue timeout
    {QUEUED, ticketId, queueTimeoutMs, nextIn, epoch}
      (while the group learns (rule 12), nothing is granted: an acquire queues, or is rejected 'full')
    {UNKNOWN_SCOPE, i}  the i-th scope name   {UNKNOWN_BACKEND, backend}
    {UNKNOWN_SERVER, 'backend/server'}        {BAD_REQUEST, detail}
    {NOT_CONFIGURED}  the group has no spec
    (codes: includes/replies.lua)
]]
--- @include "includes/prelude"
--- @include "includes/replies"
--- @include "includes/constants"

-- The general path: everything the fast path below does not handle. Its functions are made only
-- when it runs (making a Lua function costs about what a simple call runs).
local function general()
--- @include "includes/flush"
--- @include "includes/op-acquire"

-- Counters this script usually moves, read up front with the others.
READ[#READ + 1] = 'granted'

local requested = {}
local first = ARGV[13] == '\0' and 16 or 13
for i = first, #ARGV do requested[i - first + 1] = ARGV[i] end
if not start(requested) then return {NOT_CONFIGURED} end
local reply = acquireOp(ARGV, 0, #ARGV)
flush()
return reply
end -- of general()

-- The fast path: GroupState.acquire for the common request: named scopes only (no keyed scope, no
-- backend, no name twice), the group configured, no deadline due (the hints). It grants, rejects or
-- queues exactly as the general path; anything else goes there before a write. A request with
-- early rejection that would queue goes there too.
local leaseId, channel, sharded = ARGV[1], ARGV[2], tonumber(ARGV[3])
local cls, offset, queueTimeout, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local ke, kf = tonumber(ARGV[10]) or 0, tonumber(ARGV[11]) or 0
local skip, flow, early = 12, nil, false
if ARGV[13] == '\0' then
  skip, early = 15, ARGV[15] == '1'
  if ARGV[14] ~= '' then flow = ARGV[14] end
end
local n = #ARGV - skip
if ARGV[8] == '' and ARGV[9] == '' and n >= 1 and n <= 100 then
  local fields, seen, names = {'\0nd', '\0ng'}, n > 1 and {}, {}
  for i = 1, n do
    local name = ARGV[skip + i]
    if seen then
      if seen[name] then return general() end
      seen[name] = true
    end
    names[i] = name
    fields[i + 2] = 's' .. name
  end
  fields[n + 3] = '\0clock'
  if flow then fields[n + 4] = 'f' .. flow end -- its weight (rule F)
  local cfg = redis.pcall('HMGET', K_CFG, unpack(fields))
  local nd, ng = tonumber(cfg[1]), tonumber(cfg[2])
  NOW = tonumber(cfg[n + 3]) or NOW
  if nd and ng and NOW < nd and NOW < ng then
    -- per scope: limits, and counters at 5i-4 in_use, 5i-3 queued, 5i-2 peak_in_use, 5i-1 peak_queued, 5i granted
    local max, mq, sf = {}, {}, {}
    for i = 1, n do
      local m = cfg[i + 2]
      if not m or string.sub(m, 1, 2) ~= 'n|' then return general() end
      local a, b = string.match(m, '^n|([^|]*)|(.*)$')
      max[i], mq[i] = tonumber(a) or math.huge, tonumber(b) or math.huge
      local prefix = names[i] .. '\0'
      sf[5 * i - 4], sf[5 * i - 3], sf[5 * i - 2] = prefix .. 'in_use', prefix .. 'queued', prefix .. 'peak_in_use'
      sf[5 * i - 1], sf[5 * i] = prefix .. 'peak_queued', prefix .. 'granted'
    end
    local g = 5 * n
    sf[g + 1], sf[g + 2], sf[g + 3], sf[g + 4], sf[g + 5], sf[g + 6] = '\0fence', '\0w0', '\0seq', '\0base', '\0epoch', '\0learn'
    sf[g + 7] = '\0vt'
    local v = redis.call('HMGET', K_SC, unpack(sf))
    local c = {}
    for i = 1, g + 7 do c[i] = tonumber(v[i]) or 0 end
    -- Rule 12: a group that is learning, has no epoch yet, or an epoch or fence the caller does
    -- not expect goes to the general path (detect).
    local epoch = c[g + 5]
    if epoch == 0 or c[g + 6] ~= 0 or (ke ~= 0 and ke ~= epoch) or kf > c[g + 1] then return general() end
    local fits = true
    for i = 1, n do
      if c[5 * i - 4] >= max[i] then fits = false end
    end
    local set = {} -- HSET arguments: field, value, ...
    if fits then
      -- As grant() in lib: above the counter and the clock in µs-scale; a string in JSON (cjson precision).
      local fence, exp = math.max(c[g + 1] + 1, NOW * 1000), NOW + ttl
      if redis.call('HSETNX', K_LEASE, leaseId, cjson.encode({c = names, f = string.format('%d', fence), g = NOW, t = ttl})) == 0 then return general() end
      redis.call('ZADD', K_LEASES, exp, leaseId)
      set[1], set[2], set[3], set[4] = '\0fence', fence, '\0w0', c[g + 2] + 1
      for i = 1, n do
        local inUse, k = c[5 * i - 4] + 1, #set
        set[k + 1], set[k + 2], set[k + 3], set[k + 4] = sf[5 * i - 4], inUse, sf[5 * i], c[5 * i] + 1
        if inUse > c[5 * i - 2] then set[k + 5], set[k + 6] = sf[5 * i - 2], inUse end
      end
      redis.call('HSET', K_SC, unpack(set))
      if exp < nd then
        nd = exp
        redis.call('HSET', K_CFG, '\0nd', nd, '\0ng', ng)
      end
      return {GRANTED, leaseId, fence, '', '', exp, ttl, nd - NOW, epoch}
    end
    local later = nd >= 1e15 and -1 or nd - NOW
    if queueTimeout <= 0 then
      for i = 1, n do
        if c[5 * i - 4] >= max[i] then redis.call('HINCRBY', K_SC, names[i] .. '\0rejected_full', 1) end
      end
      return {REJECTED, 'full', later, epoch}
    end
    local queueFull = false
    for i = 1, n do
      if c[5 * i - 3] >= mq[i] then queueFull = true end
    end
    if queueFull then
      for i = 1, n do
        if c[5 * i - 3] >= mq[i] then redis.call('HINCRBY', K_SC, names[i] .. '\0rejected_queue_full', 1) end
      end
      return {REJECTED, 'queue-full', later, epoch}
    end
    if early or redis.call('HEXISTS', K_LEASE, leaseId) == 1 then return general() end
    -- Without a flow while flows wait, it may join the default flow (rule F): the general path.
    if not flow and redis.call('HLEN', K_FLOWS) > 0 then return general() end
    local seq = (c[g + 3] == 0 and NOW * 1000 or c[g + 3]) + 1
    local base = c[g + 4]
    if base == 0 or redis.call('ZCARD', K_QUEUE) == 0 then base = NOW - BASE_LEAD end
    local id = string.format('%016d', seq)
    -- Rule F (includes/fair, fairTag): its tag, and its flow's entry moved on.
    local tag = c[g + 7]
    if flow then
      local raw = redis.call('HGET', K_FLOWS, flow)
      local F, fn, fg = 0, 0, 0
      if raw then
        local x, y, z = string.match(raw, '^(%d+) (%d+) (%d+)$')
        F, fn, fg = tonumber(x), tonumber(y), tonumber(z)
      end
      local fc = math.floor(1000000 / (tonumber(cfg[n + 4]) or 1))
      if fn > 0 then
        tag = math.max(tag, math.min(F, tag + (fn + 1) * fc))
      else
        fg = 0
      end
      if tag + fc > 1125899906842624 then
        tag = c[g + 7]
        if fn == 0 then F = tag end
      else
        F = tag + fc
      end
      redis.call('HSET', K_FLOWS, flow, string.format('%d %d %d', F, fn + 1, fg))
    end
    -- Its order (includes/fair, orderOf): class, tag, arrival, base 127.
    local ob, k = {}, 16
    local x = math.min(math.max(NOW + offset - base, 0), CLASS_STEP - 1)
    for _ = 1, 6 do
      local d = math.fmod(x, 127)
      ob[k], x, k = string.char(d + 1), (x - d) / 127, k - 1
    end
    x = tag
    for _ = 1, 8 do
      local d = math.fmod(x, 127)
      ob[k], x, k = string.char(d + 1), (x - d) / 127, k - 1
    end
    x = cls + 2048
    for _ = 1, 2 do
      local d = math.fmod(x, 127)
      ob[k], x, k = string.char(d + 1), (x - d) / 127, k - 1
    end
    -- It waits on the last of its scopes without room (includes/dispatch, blocker).
    local w
    for i = 1, n do
      if c[5 * i - 4] >= max[i] then w = 's' .. #names[i] .. ':' .. names[i] end
    end
    local o = table.concat(ob)
    set[1], set[2], set[3], set[4] = '\0seq', seq, '\0base', base
    for i = 1, n do
      local queued, k = c[5 * i - 3] + 1, #set
      set[k + 1], set[k + 2] = sf[5 * i - 3], queued
      if queued > c[5 * i - 1] then set[k + 3], set[k + 4] = sf[5 * i - 1], queued end
      k = #set
      -- Rule E (op-acquire): a queue that was empty starts the next hand-off interval now.
      if queued == 1 then set[k + 1], set[k + 2] = names[i] .. '\0ho', NOW end
    end
    local d = NOW + queueTimeout
    redis.call('HSET', K_TICKETS, id, cjson.encode({s = names, e = NOW, d = d, t = ttl, l = leaseId, ch = channel, sh = sharded, w = w, o = o, f = flow}))
    redis.call('ZADD', K_QUEUE, NOW, id)
    redis.call('ZADD', K_WAITS, 0, w .. o .. id)
    redis.call('ZADD', K_TDL, d, id)
    redis.call('HSET', K_SC, unpack(set))
    if d < nd then
      nd = d
      redis.call('HSET', K_CFG, '\0nd', nd, '\0ng', ng)
    end
    return {QUEUED, id, queueTimeout, nd - NOW, epoch}
  end
end
return general()
