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
local raw = redis.call('HGET', K_LEASE, id)
if not start() then return {NOT_CONFIGURED} end
advance()
if not raw or ENDED[id] then
  flush()
  return {0, nextIn()}
end
local rec = cjson.decode(raw)
if rec.k or rec.t ~= ttl then
  -- The holder has its grant: its waiter no longer needs to find it through the record.
  rec.k, rec.w, rec.t = nil, nil, ttl
  redis.call('HSET', K_LEASE, id, cjson.encode(rec))
end
redis.call('ZADD', K_LEASES, NOW + ttl, id)
due(NOW + ttl)
flush()
return {1, NOW + ttl, nextIn()}
`,
  {
    // GroupState.renew of a live lease when no deadline is due (the hints): what the general path
    // writes, without its library.
    fast: String.raw`
local id, ttl = ARGV[1], tonumber(ARGV[2])
local raw = redis.call('HGET', K_LEASE, id)
local cfg = redis.pcall('HMGET', K_CFG, '\0nd', '\0ng')
local nd, ng = tonumber(cfg[1]), tonumber(cfg[2])
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
  return {1, exp, nd - NOW}
end
return general()
`,
  },
);
