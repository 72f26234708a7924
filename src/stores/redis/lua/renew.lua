--[[
  slotgateRenew: extends a lease to now + ttl on the server clock (GroupState.renew); while the group learns (rule 12), re-creates a lease its state lost.
  Input:
    KEYS[1] cfg, KEYS[2] sc, KEYS[3] srv, KEYS[4] leases, KEYS[5] lease, KEYS[6] queue,
    KEYS[7] tickets, KEYS[8] tdl, KEYS[9] grants, KEYS[10] gexp, KEYS[11] waits, KEYS[12] flows: the group's keys,
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
--- @include "includes/flush"
--- @include "includes/op-renew"
local rec = leaseRec(ARGV[1])
if not start() then return {NOT_CONFIGURED} end
local reply = renewOp(ARGV, 0, #ARGV, rec)
flush()
return reply
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
