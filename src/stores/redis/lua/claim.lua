--[[
  slotgateClaim: the safety re-check of waiting tickets: picks up outcomes whose wake-up message was lost.
  Input:
    KEYS[1] cfg, KEYS[2] sc, KEYS[3] srv, KEYS[4] leases, KEYS[5] lease, KEYS[6] queue,
    KEYS[7] tickets, KEYS[8] tdl, KEYS[9] grants, KEYS[10] gexp, KEYS[11] waits, KEYS[12] flows: the group's keys,
      the same for every script (what each holds: KEY_LAYOUT in src/stores/redis/keys.ts)
    ARGV[1..] ticket id, lease id it is granted under ('' if unknown), ticket id, lease id, ...
  Output:
    {nextIn, code1, outcome1, code2, outcome2, ...} one pair per ticket, in ARGV order:
      QUEUED, ''        still queued
      OUTCOME, outcome  granted or timed out: the outcome JSON, now claimed
      NOT_FOUND, ''     unknown ticket
    {NOT_CONFIGURED}    the group has no spec
    (codes: includes/replies.lua)
]]
--- @include "includes/prelude"
--- @include "includes/replies"
--- @include "includes/settle"
--- @include "includes/flush"

if not start() then return {NOT_CONFIGURED} end
advance()
flush()
local out = {0}
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  local code, msg = NOT_FOUND, ''
  local kept = redis.call('HGET', K_GRANTS, id)
  if kept then
    redis.call('HDEL', K_GRANTS, id)
    redis.call('ZREM', K_GEXP, id)
    code, msg = OUTCOME, kept
  elseif redis.call('HEXISTS', K_TICKETS, id) == 1 then
    code = QUEUED
  else
    local granted = leaseOutcome(id, ARGV[i + 1])
    if granted then code, msg = OUTCOME, granted end
  end
  out[#out + 1] = code
  out[#out + 1] = msg
end
out[1] = nextIn()
return out
