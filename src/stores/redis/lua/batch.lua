--[[
  slotgateBatch: several acquires, releases, renewals and cancels of one group in one call, applied
  in order as if each had been its own script call at the same instant (SPEC §2: one atomic step
  per group, arrival order kept). The client sends what its callers asked for in the same turn of
  its event loop; each op gets its own reply, exactly what its own script would have replied.
  Input:
    KEYS[1] cfg, KEYS[2] sc, KEYS[3] srv, KEYS[4] leases, KEYS[5] lease, KEYS[6] queue,
    KEYS[7] tickets, KEYS[8] tdl, KEYS[9] grants, KEYS[10] gexp, KEYS[11] waits, KEYS[12] flows: the group's keys,
      the same for every script (what each holds: KEY_LAYOUT in src/stores/redis/keys.ts)
    ARGV[1]  the caller's wake channel ('' for none): wake-ups for it come back in the reply
    ARGV[2..] the ops, one after the other, each as: code, n, then the n ARGV of its own script
      a  slotgateAcquire     r  slotgateRelease (its channel argument is not used: ARGV[1] is)
      n  slotgateRenew       c  slotgateCancel
  Output:
    {DONE, reply1, ..., replyN, outcome...}  one reply per op, in order, as its own script replies
      (without a release's outcomes); then the outcome JSON of every ticket granted or timed out
      in this call whose waiter listens on ARGV[1]
    {NOT_CONFIGURED}  the group has no spec: no op ran
    {BAD_REQUEST, detail}  malformed op list: no op ran
    (codes: includes/replies.lua)

  The state is read once for the whole call (the clock, the deadline hints, the limits of the
  scopes named, their counters) and written back once, at the end: a batch of N ops costs one
  script call and about two commands per op, where N calls cost N times the reads and writes.
]]
--- @include "includes/prelude"
--- @include "includes/replies"
--- @include "includes/flush"
--- @include "includes/op-acquire"
--- @include "includes/op-release"
--- @include "includes/op-renew"
--- @include "includes/op-cancel"

-- Counters these ops usually move, read up front with the others.
READ[#READ + 1] = 'granted'
READ[#READ + 1] = 'released'

-- Checks the op list before anything runs, and gathers the scopes the acquires name, so that the
-- first read of cfg brings their limits too, and the leases the ops name, read in one HMGET.
local ops, names, leases = {}, {}, {}
local i, last = 2, #ARGV
while i <= last do
  local code, n = ARGV[i], tonumber(ARGV[i + 1])
  if not n or n < 0 or i + 1 + n > last or (code ~= 'a' and code ~= 'r' and code ~= 'n' and code ~= 'c') then
    return {BAD_REQUEST, 'malformed op list'}
  end
  if code == 'a' then
    -- its 13th argument '\0': flow and early follow, then the scopes (acquire.lua)
    for k = (ARGV[i + 14] == '\0') and i + 17 or i + 14, i + 1 + n do names[#names + 1] = ARGV[k] end
  end
  if code ~= 'c' and n > 0 then leases[#leases + 1] = ARGV[i + 2] end
  ops[#ops + 1] = i
  i = i + 2 + n
end

if ARGV[1] ~= '' then LOCAL_CH = ARGV[1] end
if not start(names) then return {NOT_CONFIGURED} end
leaseBuffer()
leasePrefetch(leases)
local out = {DONE}
for k = 1, #ops do
  local o = ops[k]
  local code, n = ARGV[o], tonumber(ARGV[o + 1])
  o = o + 1 -- ARGV[o + j] is the op's j-th argument
  local reply
  if code == 'a' then
    reply = acquireOp(ARGV, o, n)
  elseif code == 'r' then
    local id = ARGV[o + 1]
    reply = releaseOp(id, leaseRec(id))
  elseif code == 'n' then
    reply = renewOp(ARGV, o, n, leaseRec(ARGV[o + 1]))
  else
    reply = cancelOp(ARGV[o + 1], ARGV[o + 2], ARGV[o + 3])
  end
  out[k + 1] = reply
end
flush()
for k = 1, #LOCAL do out[#out + 1] = LOCAL[k] end
return out
