import { defineScript } from "./define.js";

export const renew = defineScript(
  "slotgateRenew",
  "extends a lease to now + ttl on the server clock (GroupState.renew).",
  `    ARGV[1]  lease id
    ARGV[2]  TTL ms`,
  `    {1, expiresAt, nextIn}  renewed       {0, nextIn}  the lease is gone
    {-100}                  the group has no spec`,
  String.raw`
local id, ttl = ARGV[1], tonumber(ARGV[2])
if not loadCfg() then return {NOT_CONFIGURED} end
advance()
local raw = redis.call('HGET', K_LEASE, id)
if not raw then
  flush()
  return {0, nextIn()}
end
local rec = cjson.decode(raw)
if rec.k then
  redis.call('HDEL', K_GRANTS, rec.k)
  redis.call('ZREM', K_GEXP, rec.k)
  rec.k = nil
end
rec.t = ttl
redis.call('HSET', K_LEASE, id, cjson.encode(rec))
redis.call('ZADD', K_LEASES, NOW + ttl, id)
flush()
return {1, NOW + ttl, nextIn()}
`,
);
