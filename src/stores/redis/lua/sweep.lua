--[[
  slotgateSweep: settles due deadlines (GroupState.tick): reclaims expired leases, times out tickets, dispatches.
  Input:
    KEYS[1] cfg, KEYS[2] sc, KEYS[3] srv, KEYS[4] leases, KEYS[5] lease, KEYS[6] queue,
    KEYS[7] tickets, KEYS[8] tdl, KEYS[9] grants, KEYS[10] gexp, KEYS[11] waits, KEYS[12] flows: the group's keys,
      the same for every script (what each holds: KEY_LAYOUT in src/stores/redis/keys.ts)
    (none)
  Output:
    {nextIn}  ms until the next deadline, -1 when there is none (also when the group has no spec)
]]
--- @include "includes/prelude"
--- @include "includes/replies"

-- The general path: everything the fast path below does not handle. Its functions are made only
-- when it runs (making a Lua function costs about what a simple call runs).
local function general()
--- @include "includes/settle"
--- @include "includes/flush"
if not start() then return {-1} end
advance()
flush()
return {nextIn()}
end -- of general()

-- The fast path: nothing is due before the hints, so there is nothing to settle.
local cfg = redis.pcall('HMGET', K_CFG, '\0nd', '\0ng', '\0clock')
local nd, ng = tonumber(cfg[1]), tonumber(cfg[2])
NOW = tonumber(cfg[3]) or NOW
if nd and ng and NOW < nd and NOW < ng then
  if nd >= 1e15 then return {-1} end
  return {nd - NOW}
end
return general()
