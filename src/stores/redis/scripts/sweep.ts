import { defineScript } from "./define.js";

export const sweep = defineScript(
  "slotgateSweep",
  "settles due deadlines (GroupState.tick): reclaims expired leases, times out tickets, dispatches.",
  `    (none)`,
  `    {nextIn}  ms until the next deadline, -1 when there is none (also when the group has no spec)`,
  String.raw`
if not loadCfg() then return {-1} end
advance()
flush()
return {nextIn()}
`,
);
