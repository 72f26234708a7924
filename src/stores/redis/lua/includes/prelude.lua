--[[
  The start of every script: the keys by name, in KEYS order (KEY_LAYOUT in
  src/stores/redis/keys.ts), and NOW, the store clock in ms: Redis TIME, never a client's.

  Test-only: a group whose cfg has the field '\0clock' runs on that clock instead (ms). Each script
  reads it with its first read of cfg (start(), or the HMGET that opens a fast path), so it costs
  nothing more, and sets NOW from it before using NOW. Only the differential test sets it, with HSET:
  no spec can write it (spec fields start with 's' or 'b'), and configure keeps it.
]]

local K_CFG, K_SC, K_SRV, K_LEASES, K_LEASE, K_QUEUE, K_TICKETS, K_TDL, K_GRANTS, K_GEXP = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local K_WAITS, K_FLOWS = KEYS[11], KEYS[12]
local NOW
do
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
