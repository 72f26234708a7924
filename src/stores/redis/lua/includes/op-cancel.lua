--[[
  GroupState.cancel: removes a queued ticket, or hands back the outcome it already had. Run by
  slotgateCancel and by slotgateBatch; the caller has run start(), and flushes afterwards.
]]
--- @include "settle"

local function cancelOp(id, how, leaseId)
  if how ~= 'aborted' and how ~= 'queue_timeouts' then return {BAD_REQUEST, 'bad counter'} end
  advance()
  local raw = redis.call('HGET', K_TICKETS, id)
  if raw then
    local t = loadTicket(id, raw)
    removeTicket(id, t)
    for _, s in ipairs(t.fx) do dequeue(s, how) end
    collect(t.fx)
    leave(t, false)
    -- Removing a ticket frees no slot, so no other ticket can start to fit: no dispatch.
    return {CANCELLED, '', nextIn()}
  end
  local kept = redis.call('HGET', K_GRANTS, id)
  if kept then
    redis.call('HDEL', K_GRANTS, id)
    redis.call('ZREM', K_GEXP, id)
    return {OUTCOME, kept, nextIn()}
  end
  local granted = leaseOutcome(id, leaseId)
  if granted then return {OUTCOME, granted, nextIn()} end
  return {NOT_FOUND, '', nextIn()}
end
