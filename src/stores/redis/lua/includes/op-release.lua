--[[
  GroupState.release, the general path: ends a lease and dispatches the slots it frees;
  idempotent. Run by slotgateRelease (when its fast path does not apply) and by slotgateBatch; the
  caller has read the lease record (rec, nil when there is none) and run start(), and flushes
  afterwards.
]]
--- @include "settle"

local function releaseOp(id, rec)
  advance()
  if not rec or ENDED[id] then return {NOT_FOUND, nextIn()} end
  local opened = endLease(id, rec, 'released')
  if opened then dispatch(opened) end
  return {RELEASED, nextIn()}
end
