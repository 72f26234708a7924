import { defineScript } from "./define.js";

export const sweep = defineScript(
  "slotgateSweep",
  "settles due deadlines (GroupState.tick): reclaims expired leases, times out tickets, dispatches.",
  `    (none)`,
  `    {nextIn}  ms until the next deadline, -1 when there is none (also when the group has no spec)`,
  String.raw`
if not start() then return {-1} end
advance()
flush()
return {nextIn()}
`,
  {
    // Nothing due before the hints: nothing to settle.
    fast: String.raw`
local cfg = redis.pcall('HMGET', K_CFG, '\0nd', '\0ng')
local nd, ng = tonumber(cfg[1]), tonumber(cfg[2])
if nd and ng and NOW < nd and NOW < ng then
  if nd >= 1e15 then return {-1} end
  return {nd - NOW}
end
return general()
`,
  },
);
