import { defineScript } from "./define.js";

export const claim = defineScript(
  "slotgateClaim",
  "the safety re-check of waiting tickets: picks up outcomes whose wake-up message was lost.",
  `    ARGV[1..] ticket ids`,
  `    {nextIn, code1, outcome1, code2, outcome2, ...} one pair per ticket, in ARGV order:
      1, ''       still queued
      2, outcome  granted or timed out: the outcome JSON, now claimed
      0, ''       unknown ticket
    {-100}        the group has no spec`,
  String.raw`
if not loadCfg() then return {NOT_CONFIGURED} end
advance()
flush()
local out = {0}
for i = 1, #ARGV do
  local id = ARGV[i]
  local outcome = redis.call('HGET', K_GRANTS, id)
  if outcome then
    redis.call('HDEL', K_GRANTS, id)
    redis.call('ZREM', K_GEXP, id)
    out[#out + 1] = 2
    out[#out + 1] = outcome
  elseif redis.call('HEXISTS', K_TICKETS, id) == 1 then
    out[#out + 1] = 1
    out[#out + 1] = ''
  else
    out[#out + 1] = 0
    out[#out + 1] = ''
  end
end
out[1] = nextIn()
return out
`,
);
