--[[
  slotgateCancel: removes a queued ticket (GroupState.cancel), or hands back the outcome it already had.
  Input:
    KEYS[1] cfg, KEYS[2] sc, KEYS[3] srv, KEYS[4] leases, KEYS[5] lease, KEYS[6] queue,
    KEYS[7] tickets, KEYS[8] tdl, KEYS[9] grants, KEYS[10] gexp, KEYS[11] waits, KEYS[12] flows: the group's keys,
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
--- @include "includes/flush"
--- @include "includes/op-cancel"

-- Counters this script usually moves, read up front with the others.
READ[#READ + 1] = 'aborted'

if ARGV[2] ~= 'aborted' and ARGV[2] ~= 'queue_timeouts' then return {BAD_REQUEST, 'bad counter'} end
if not start() then return {NOT_CONFIGURED} end
local reply = cancelOp(ARGV[1], ARGV[2], ARGV[3])
flush()
return reply
