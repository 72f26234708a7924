import { defineScript } from "./define.js";

export const release = defineScript(
  "slotgateRelease",
  "ends a lease (GroupState.release) and dispatches the slots it frees; idempotent.",
  `    ARGV[1]  lease id`,
  `    {1, nextIn}  released        {0, nextIn}  unknown (released, expired, never granted)
    {-100}       the group has no spec`,
  String.raw`
local id = ARGV[1]
if not loadCfg() then return {NOT_CONFIGURED} end
advance()
local raw = redis.call('HGET', K_LEASE, id)
if not raw then
  flush()
  return {0, nextIn()}
end
local rec = cjson.decode(raw)
dispatch(endLease(id, rec, false))
if rec.k then
  -- The holder had its grant: the outcome kept for its waiter is no longer needed.
  redis.call('HDEL', K_GRANTS, rec.k)
  redis.call('ZREM', K_GEXP, rec.k)
end
flush()
return {1, nextIn()}
`,
);
