--[[
  slotgateServerState: marks a server up or down (GroupState.setServerState); up dispatches the queue.
  Input:
    KEYS[1] cfg, KEYS[2] sc, KEYS[3] srv, KEYS[4] leases, KEYS[5] lease, KEYS[6] queue,
    KEYS[7] tickets, KEYS[8] tdl, KEYS[9] grants, KEYS[10] gexp, KEYS[11] waits, KEYS[12] flows: the group's keys,
      the same for every script (what each holds: KEY_LAYOUT in src/stores/redis/keys.ts)
    ARGV[1]  backend name
    ARGV[2]  server name
    ARGV[3]  1: up, 0: down
  Output:
    {DONE, '', nextIn}
    {UNKNOWN_BACKEND, backend}    {UNKNOWN_SERVER, 'backend/server'}
    {NOT_CONFIGURED}              the group has no spec
    (codes: includes/replies.lua)
]]
--- @include "includes/prelude"
--- @include "includes/replies"
--- @include "includes/settle"
--- @include "includes/flush"

local bname, sname, up = ARGV[1], ARGV[2], ARGV[3]
if not start() then return {NOT_CONFIGURED} end
advance()
local b = backend(bname)
if not b then
  flush()
  return {UNKNOWN_BACKEND, bname}
end
local sv
for _, s in ipairs(b.servers) do
  if s.name == sname then sv = s end
end
if not sv then
  flush()
  return {UNKNOWN_SERVER, bname .. '/' .. sname}
end
redis.call('HSET', K_SRV, srvField(bname, sname, 'up'), up == '1' and '1' or '0')
sv.up = (up == '1')
if up == '1' then dispatchUp(bname, sname) end
flush()
return {DONE, '', nextIn()}
