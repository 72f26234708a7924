--[[
  slotgateRelease: ends a lease (GroupState.release) and dispatches the slots it frees; idempotent.
  Input:
    KEYS[1] cfg, KEYS[2] sc, KEYS[3] srv, KEYS[4] leases, KEYS[5] lease, KEYS[6] queue,
    KEYS[7] tickets, KEYS[8] tdl, KEYS[9] grants, KEYS[10] gexp, KEYS[11] waits, KEYS[12] flows: the group's keys,
      the same for every script (what each holds: KEY_LAYOUT in src/stores/redis/keys.ts)
    ARGV[1]  lease id
    ARGV[2]  the caller's wake channel ('' for none): wake-ups for it come back in the reply
  Output:
    {RELEASED, nextIn, outcome...}
    {NOT_FOUND, nextIn, outcome...}  the lease is not live (released, expired, never granted)
      outcome: the outcome JSON of a ticket granted or timed out meanwhile whose waiter listens on ARGV[2]
    {NOT_CONFIGURED}                 the group has no spec
    (codes: includes/replies.lua)
]]
--- @include "includes/prelude"
--- @include "includes/replies"
--- @include "includes/bounds"

-- The general path: everything the fast path below does not handle. Its functions are made only
-- when it runs (making a Lua function costs about what a simple call runs).
local function general()
--- @include "includes/flush"
--- @include "includes/op-release"

-- Counters this script usually moves, read up front with the others.
READ[#READ + 1] = 'released'
READ[#READ + 1] = 'granted'

local id = ARGV[1]
if ARGV[2] and ARGV[2] ~= '' then LOCAL_CH = ARGV[2] end
local raw = redis.call('HGET', K_LEASE, id)
local rec = raw and cjson.decode(raw)
if not start(rec and rec.c) then return {NOT_CONFIGURED} end
local reply = releaseOp(id, rec)
flush()
for i = 1, #LOCAL do reply[#reply + 1] = LOCAL[i] end
return reply
end -- of general()

-- The fast path: GroupState.release for the common lease: named scopes only (no name twice), the
-- group configured, no deadline due (the hints), and either nothing to dispatch or a dispatch that
-- grants just the first ticket waiting on a scope that got room (it has named scopes only, fits,
-- and leaves every such scope full again), in a fifo queue. Anything else goes to the general
-- path before a write.
local id = ARGV[1]
local raw = redis.call('HGET', K_LEASE, id)
local chain = raw and cjson.decode(raw).c
if type(chain) == 'table' and #chain <= 100 then
  local n = #chain
  local fields, seen = {'\0nd', '\0ng'}, {}
  for i = 1, n do
    if seen[chain[i]] then return general() end
    seen[chain[i]] = true
    fields[i + 2] = 's' .. chain[i]
  end
  fields[n + 3], fields[n + 4] = '\0clock', '\0q'
  local cfg = redis.pcall('HMGET', K_CFG, unpack(fields))
  local nd, ng = tonumber(cfg[1]), tonumber(cfg[2])
  NOW = tonumber(cfg[n + 3]) or NOW
  if cfg[n + 4] and string.sub(cfg[n + 4], 1, 5) ~= 'fifo|' then return general() end
  if nd and ng and NOW < nd and NOW < ng then
    local max, sf = {}, {}
    for i = 1, n do
      local m = cfg[i + 2]
      if not m or string.sub(m, 1, 2) ~= 'n|' then return general() end
      max[chain[i]] = tonumber(string.match(m, '^n|([^|]*)|')) or math.huge
      local prefix = chain[i] .. '\0'
      sf[2 * i - 1], sf[2 * i] = prefix .. 'in_use', prefix .. 'released'
    end
    -- set: sc field -> new value; inUse: scope -> in_use now; opened: scopes that were full and got room
    local set, inUse, opened, anyOpened = {}, {}, {}, false
    if n > 0 then
      local v = redis.call('HMGET', K_SC, unpack(sf))
      for i = 1, n do
        local name, u = chain[i], tonumber(v[2 * i - 1]) or 0
        if u >= max[name] and u - 1 < max[name] then
          opened[name] = true
          anyOpened = true
        end
        inUse[name] = u - 1
        set[sf[2 * i - 1]] = u - 1
        set[sf[2 * i]] = (tonumber(v[2 * i]) or 0) + 1
      end
    end
    -- The ticket first in queue order among those waiting on a scope that got room (key waits,
    -- includes/dispatch): the one the general path would try first. Tails compare byte by byte
    -- (Lua's string order follows the locale).
    local member, head
    if anyOpened then
      for name in pairs(opened) do
        local key = 's' .. #name .. ':' .. name
        local m = redis.call('ZRANGEBYLEX', K_WAITS, '[' .. key, '(' .. key .. '\255', 'LIMIT', 0, 1)[1]
        if m and member then
          local a, b = #m - 31, #member - 31
          for i = 0, 31 do
            local x, y = string.byte(m, a + i), string.byte(member, b + i)
            if x ~= y then
              if x < y then member = m end
              break
            end
          end
        elseif m then
          member = m
        end
      end
      head = member and string.sub(member, -16)
    end
    local t, granted, epoch, vt
    if head then
      local traw = redis.call('HGET', K_TICKETS, head)
      t = traw and cjson.decode(traw)
      local ts = t and t.s
      if not t or t.b or t.p or type(ts) ~= 'table' or #ts == 0 or #ts > 100 then return general() end
      local more, names, tseen = {}, {}, {}
      for i = 1, #ts do
        if tseen[ts[i]] then return general() end
        tseen[ts[i]] = true
        if not max[ts[i]] then
          more[#more + 1] = 's' .. ts[i]
          names[#names + 1] = ts[i]
        end
      end
      if #more > 0 then
        local ms = redis.call('HMGET', K_CFG, unpack(more))
        for i = 1, #names do
          if not ms[i] or string.sub(ms[i], 1, 2) ~= 'n|' then return general() end
          max[names[i]] = tonumber(string.match(ms[i], '^n|([^|]*)|')) or math.huge
        end
      end
      local waited, bounds, bucket = NOW - t.e, BOUNDS, #BOUNDS
      for i = 1, #bounds do
        if waited <= bounds[i] then
          bucket = i - 1
          break
        end
      end
      -- per ticket scope: 4i-3 in_use, 4i-2 queued, 4i-1 peak_in_use, 4i granted; hand-offs after them
      local cf = {}
      for i = 1, #ts do
        local prefix = ts[i] .. '\0'
        cf[4 * i - 3], cf[4 * i - 2], cf[4 * i - 1], cf[4 * i] = prefix .. 'in_use', prefix .. 'queued', prefix .. 'peak_in_use', prefix .. 'granted'
      end
      local k = 4 * #ts
      cf[k + 1], cf[k + 2], cf[k + 3], cf[k + 4], cf[k + 5], cf[k + 6] = '\0fence', '\0wsum', '\0w' .. bucket, '\0learn', '\0epoch', '\0vt'
      local h = k + 6
      for i = 1, #ts do cf[h + 2 * i - 1], cf[h + 2 * i] = ts[i] .. '\0ho', ts[i] .. '\0hm' end
      local c = redis.call('HMGET', K_SC, unpack(cf))
      -- A group that learns (rule 12) grants nothing: the general path leaves the ticket queued.
      if c[k + 4] and c[k + 4] ~= '0' then return general() end
      -- Rule E: the grant is a hand-off on every scope of its chain (as handoff() in includes/scopes).
      for i = 1, #ts do
        local last = tonumber(c[h + 2 * i - 1])
        if last then
          local d, hm = NOW - last, tonumber(c[h + 2 * i])
          if hm then hm = hm + (d - hm) / 8 else hm = d end
          set[cf[h + 2 * i]] = hm
        end
        set[cf[h + 2 * i - 1]] = NOW
      end
      epoch = tonumber(c[k + 5]) or 0
      for i = 1, #ts do
        local name = ts[i]
        if not inUse[name] then inUse[name] = tonumber(c[4 * i - 3]) or 0 end
        if inUse[name] >= max[name] then return general() end
      end
      for i = 1, #ts do
        local u = inUse[ts[i]] + 1
        inUse[ts[i]] = u
        set[cf[4 * i - 3]] = u
        set[cf[4 * i - 2]] = (tonumber(c[4 * i - 2]) or 0) - 1
        set[cf[4 * i]] = (tonumber(c[4 * i]) or 0) + 1
        if u > (tonumber(c[4 * i - 1]) or 0) then set[cf[4 * i - 1]] = u end
      end
      for name in pairs(opened) do
        if inUse[name] < max[name] then return general() end
      end
      -- As grant() in lib: above the counter and the clock in µs-scale; a string in JSON (cjson precision).
      local fence = math.max((tonumber(c[k + 1]) or 0) + 1, NOW * 1000)
      set['\0fence'] = fence
      if waited ~= 0 then set['\0wsum'] = (tonumber(c[k + 2]) or 0) + waited end
      set[cf[k + 3]] = (tonumber(c[k + 3]) or 0) + 1
      granted = {c = ts, f = string.format('%d', fence), g = NOW, t = t.t, k = head, w = waited}
      -- Rule F (includes/fair, leave): V goes up to the ticket's tag (bytes 3-10 of its order)
      -- and back to 0 once the queue is empty; its flow's entry counts the grant.
      local v, tag = tonumber(c[k + 6]) or 0, 0
      for i = #member - 29, #member - 22 do tag = tag * 127 + string.byte(member, i) - 1 end
      if tag > v then set['\0vt'] = tag end
      if v ~= 0 or tag ~= 0 then vt = true end
      if t.f then
        local x, y, z = string.match(redis.call('HGET', K_FLOWS, t.f) or '', '^(%d+) (%d+) (%d+)$')
        if x then
          if y == '1' then
            redis.call('HDEL', K_FLOWS, t.f)
          else
            redis.call('HSET', K_FLOWS, t.f, string.format('%d %d %d', tonumber(x), tonumber(y) - 1, tonumber(z) + 1))
          end
        end
      end
    end
    redis.call('HDEL', K_LEASE, id)
    redis.call('ZREM', K_LEASES, id)
    local flat = {}
    for f, value in pairs(set) do
      flat[#flat + 1] = f
      flat[#flat + 1] = value
    end
    if #flat > 0 then redis.call('HSET', K_SC, unpack(flat)) end
    if granted then
      redis.call('ZREM', K_QUEUE, head)
      if vt and redis.call('ZCARD', K_QUEUE) == 0 then redis.call('HSET', K_SC, '\0vt', 0) end
      redis.call('ZREM', K_WAITS, member)
      redis.call('HDEL', K_TICKETS, head)
      redis.call('ZREM', K_TDL, head)
      local exp = NOW + t.t
      redis.call('HSET', K_LEASE, t.l, cjson.encode(granted))
      redis.call('ZADD', K_LEASES, exp, t.l)
      if exp < nd then
        nd = exp
        redis.call('HSET', K_CFG, '\0nd', nd, '\0ng', ng)
      end
      local msg = cjson.encode({k = head, o = 'g', l = t.l, f = granted.f, x = exp, t = t.t, w = granted.w, e = string.format('%d', epoch)})
      if t.ch == ARGV[2] then return {RELEASED, nd - NOW, msg} end
      redis.call(t.sh == 1 and 'SPUBLISH' or 'PUBLISH', t.ch, msg)
    end
    if nd >= 1e15 then return {RELEASED, -1} end
    return {RELEASED, nd - NOW}
  end
end
return general()
