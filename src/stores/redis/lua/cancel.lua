--[[
  slotgateCancel: removes a queued ticket (GroupState.cancel), or hands back the outcome it already had.
  Input:
    KEYS[1] cfg, KEYS[2] sc, KEYS[3] srv, KEYS[4] leases, KEYS[5] lease, KEYS[6] queue,
    KEYS[7] tickets, KEYS[8] tdl, KEYS[9] grants, KEYS[10] gexp, KEYS[11] waits: the group's keys,
      the same for every script (what each holds: KEY_LAYOUT in src/stores/redis/keys.ts)
    ARGV[1]  ticket id
    ARGV[2]  counter for a removed ticket: 'aborted' | 'queue_timeouts'
    ARGV[3]  the lease id the ticket is granted under ('' if unknown)
  Output:
    {CANCELLED, '', nextIn}     removed from the queue
    {OUTCOME, outcome, nextIn}  it was granted or timed out first: the outcome JSON, now claimed
    {NOT_FOUND, '', nextIn}     unknown ticket
    {BAD_REQUEST, detail}       ARGV[2] is neither counter
    {NOT_CONFIGURED}            the group has no spec
    (codes: includes/replies.lua)
]]
--- @include "includes/prelude"
--- @include "includes/replies"
--- @include "includes/settle"
--- @include "includes/flush"

-- Counters this script usually moves, read up front with the others.
READ[#READ + 1] = 'aborted'


local id, how, leaseId = ARGV[1], ARGV[2], ARGV[3]
if how ~= 'aborted' and how ~= 'queue_timeouts' then return {BAD_REQUEST, 'bad counter'} end
if not start() then return {NOT_CONFIGURED} end
advance()
local raw = redis.call('HGET', K_TICKETS, id)
if raw then
  local t = loadTicket(id, raw)
  removeTicket(id, t)
  for _, s in ipairs(t.fx) do dequeue(s, how) end
  collect(t.fx)
  -- Removing a ticket frees no slot, so no other ticket can start to fit: no dispatch.
  flush()
  return {CANCELLED, '', nextIn()}
end
flush()
local kept = redis.call('HGET', K_GRANTS, id)
if kept then
  redis.call('HDEL', K_GRANTS, id)
  redis.call('ZREM', K_GEXP, id)
  return {OUTCOME, kept, nextIn()}
end
local granted = leaseOutcome(id, leaseId)
if granted then return {OUTCOME, granted, nextIn()} end
return {NOT_FOUND, '', nextIn()}
