--[[
  Leases (keys leases, lease): GroupState#grant and #endLease.
]]
--- @include "balance"
--- @include "lease-store"

-- GroupState#grant. fixed: scope objects; sv: the server taken (nil if none); balanced: sv was
-- chosen by the backend's balance, not pinned. ticket: the ticket granted, nil for an immediate
-- grant, which fails (nil) when the lease id is already in use. Returns the lease record.
local function grant(fixed, b, sv, balanced, ttl, waited, leaseId, ticket)
  local chain = fixed
  if sv and b and balanced then
    chain = {}
    for i = 1, #fixed do chain[i] = fixed[i] end
    chain[#chain + 1] = sv.sc
  end
  local names = {}
  for i = 1, #chain do names[i] = chain[i].name end
  local g = group()
  -- Rule 10 through data loss and failover: a fence is above the last one stored and at least the
  -- store clock in µs-scale, so a counter that was lost or went back (a replica that missed
  -- writes) never reissues a fence (unless the group averaged over 1M grants/s, or the new
  -- server's clock is behind). The record carries it as a decimal string: cjson keeps only 14
  -- significant digits.
  local fence = math.max(g.fence + 1, NOW * 1000)
  local rec = {c = names, f = string.format('%d', fence), g = NOW, t = ttl}
  if ticket then rec.k, rec.w = ticket, waited end
  if b then rec.b = b.name end
  if sv then rec.s = sv.name end
  if ticket then
    leasePut(leaseId, rec, NOW + ttl)
  elseif not leaseCreate(leaseId, rec, NOW + ttl) then
    return nil
  end
  if sv and b and balanced then commit(b, sv) end
  for i = 1, #chain do take(chain[i]) end
  -- Rule E: a grant from the queue is a hand-off on every scope of the chain.
  if ticket then
    for i = 1, #chain do handoff(chain[i]) end
  end
  put(g, 'fence', fence)
  due(NOW + ttl)
  recordWait(waited)
  return rec
end

local ENDED = {} -- lease id -> true: ended in this call

-- GroupState#endLease (how: 'released' or 'expired'): returns the scopes that went from full to
-- having room (name -> scope), or nil when none did.
local function endLease(id, rec, how)
  leaseDel(id)
  ENDED[id] = true
  prepare(rec.c, true)
  local chain, opened = {}, nil
  for i, name in ipairs(rec.c) do
    local s = held(name)
    chain[i] = s
    if give(s, how) then
      opened = opened or {}
      opened[name] = s
    end
  end
  collect(chain)
  return opened
end
