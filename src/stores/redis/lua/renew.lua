--[[
  slotgateRenew: extends a lease to now + ttl on the server clock (GroupState.renew); while the group learns (rule 12), re-creates a lease its state lost.
  Input:
    KEYS[1] cfg, KEYS[2] sc, KEYS[3] srv, KEYS[4] leases, KEYS[5] lease, KEYS[6] queue,
    KEYS[7] tickets, KEYS[8] tdl, KEYS[9] grants, KEYS[10] gexp, KEYS[11] waits: the group's keys,
      the same for every script (what each holds: KEY_LAYOUT in src/stores/redis/keys.ts)
    ARGV[1]  lease id
    ARGV[2]  TTL ms
    ARGV[3]  the group epoch the lease was granted (or last re-registered) under
    ARGV[4]  the lease's fence
    ARGV[5]  the caller's longest lease TTL ms (the learning window it starts)
    ARGV[6]  the lease's backend, '' for none
    ARGV[7]  the lease's server, '' for none
    ARGV[8..] the lease's named and keyed scope names
  Output:
    {RENEWED, expiresAt, nextIn[, epoch]}
    {REREGISTERED, expiresAt, nextIn, epoch}  the group's state had lost the lease, and it fit again
    {NOT_FOUND, nextIn[, epoch]}              the lease is gone (expired, released)
    {LEASE_LOST, nextIn, epoch}               gone with the group's state, and it could not be
                                              re-registered (the scopes are full, or the window is over)
    {NOT_CONFIGURED}                          the group has no spec
    (codes: includes/replies.lua)
]]
--- @include "includes/prelude"
--- @include "includes/replies"

-- The general path: everything the fast path below does not handle. Its functions are made only
-- when it runs (making a Lua function costs about what a simple call runs).
local function general()
--- @include "includes/settle"
--- @include "includes/state-loss"
--- @include "includes/flush"
local id, ttl = ARGV[1], tonumber(ARGV[2])
local raw = redis.call('HGET', K_LEASE, id)
if not start() then return {NOT_CONFIGURED} end
if raw then
  advance()
  if not ENDED[id] then
    local rec = cjson.decode(raw)
    if rec.k or rec.t ~= ttl then
      -- The holder has its grant: its waiter no longer needs to find it through the record.
      rec.k, rec.w, rec.t = nil, nil, ttl
      redis.call('HSET', K_LEASE, id, cjson.encode(rec))
    end
    redis.call('ZADD', K_LEASES, NOW + ttl, id)
    due(NOW + ttl)
    flush()
    return {RENEWED, NOW + ttl, nextIn(), group().epoch}
  end
end
-- Gone: expired or released here, or lost with the group's state (rule 12).
local ke, kf, win = tonumber(ARGV[3]) or 0, tonumber(ARGV[4]) or 0, tonumber(ARGV[5]) or 0
if ke == 0 then
  advance()
  flush()
  return {NOT_FOUND, nextIn()}
end
detect(ke, kf, win)
advance()
local g = group()
if ke >= g.epoch then
  flush()
  return {NOT_FOUND, nextIn(), g.epoch}
end
if g.learn ~= 0 then
  local bname, sname = ARGV[6], ARGV[7]
  local names, seen = {}, {}
  for i = 8, #ARGV do names[#names + 1] = ARGV[i] end
  if bname ~= '' then
    names[#names + 1] = 'backend:' .. bname
    if sname ~= '' then names[#names + 1] = 'server:' .. bname .. '/' .. sname end
  end
  prepare(names, false)
  local chain, fits = {}, true
  for _, name in ipairs(names) do
    local s = not seen[name] and scope(name)
    seen[name] = true
    if s then chain[#chain + 1] = s end
    if not s or not room(s) then
      fits = false
      break
    end
  end
  if fits then
    -- Counted against every max, as a grant, so that a lost lease is never doubled; its fence is kept.
    local rec = {c = names, f = string.format('%d', kf), g = NOW, t = ttl}
    if bname ~= '' then rec.b = bname end
    if sname ~= '' then rec.s = sname end
    redis.call('HSET', K_LEASE, id, cjson.encode(rec))
    for _, s in ipairs(chain) do
      local p = s
      while p do
        bump(p, 'in_use', 1)
        if p.in_use > p.peak_in_use then put(p, 'peak_in_use', p.in_use) end
        p = parentOf(p)
      end
    end
    if kf > g.fence then put(g, 'fence', kf) end
    redis.call('ZADD', K_LEASES, NOW + ttl, id)
    due(NOW + ttl)
    -- Holders of a longer lease renew less often: the window covers one of their TTLs.
    if g.lstart + ttl > g.learn then
      put(g, 'learn', g.lstart + ttl)
      due(g.learn)
    end
    bump(g, 'reregistered', 1)
    flush()
    return {REREGISTERED, NOW + ttl, nextIn(), g.epoch}
  end
  collect(chain)
end
bump(g, 'lost', 1)
flush()
return {LEASE_LOST, nextIn(), g.epoch}
end -- of general()

-- The fast path: GroupState.renew of a live lease when no deadline is due (the hints): what the
-- general path writes, without defining its functions.
local id, ttl = ARGV[1], tonumber(ARGV[2])
local raw = redis.call('HGET', K_LEASE, id)
local cfg = redis.pcall('HMGET', K_CFG, '\0nd', '\0ng', '\0clock')
local nd, ng = tonumber(cfg[1]), tonumber(cfg[2])
NOW = tonumber(cfg[3]) or NOW
if raw and nd and ng and NOW < nd and NOW < ng then
  local rec = cjson.decode(raw)
  if rec.k or rec.t ~= ttl then
    rec.k, rec.w, rec.t = nil, nil, ttl
    redis.call('HSET', K_LEASE, id, cjson.encode(rec))
  end
  local exp = NOW + ttl
  redis.call('ZADD', K_LEASES, exp, id)
  if exp < nd then
    nd = exp
    redis.call('HSET', K_CFG, '\0nd', nd, '\0ng', ng)
  end
  return {RENEWED, exp, nd - NOW}
end
return general()
