--[[
  slotgateStats: the numbers of SPEC section 3 for the whole group (GroupState.stats), after settling deadlines.
  Input:
    KEYS[1] cfg, KEYS[2] sc, KEYS[3] srv, KEYS[4] leases, KEYS[5] lease, KEYS[6] queue,
    KEYS[7] tickets, KEYS[8] tdl, KEYS[9] grants, KEYS[10] gexp, KEYS[11] waits, KEYS[12] flows: the group's keys,
      the same for every script (what each holds: KEY_LAYOUT in src/stores/redis/keys.ts)
    (none)
  Output:
    {DONE, now, fence, holders, tickets, waitCount, waitSumMs, nBuckets, bucket..., nRows, row...}
      row = name, flag (0 scope, 1 keyed aggregate, 2 server), max (-1: none), maxqueue (-1: none),
            up (1/0, -1 unless a server), then in_use, queued, peak_in_use, peak_queued, granted,
            rejected_full, rejected_queue_full, queue_timeouts, aborted, expired, released, keys,
            rejected_early, codel_dropped
      then (rule 12) reregistered, lost, the end of the learning window (0: not learning), epoch
      then (rules D and F) the discipline ('' when the spec has no queue section), standing (1/0),
            nFlows, then per flow with tickets
            queued: name, waiting, granted
    {NOT_CONFIGURED}  the group has no spec
    (codes: includes/replies.lua)
]]
--- @include "includes/prelude"
--- @include "includes/replies"
--- @include "includes/settle"
--- @include "includes/flush"
--- @include "includes/fair"

if not start() then return {NOT_CONFIGURED} end
advance()
flush()
loadSpec()

local values = {}
local all = redis.call('HGETALL', K_SC)
for i = 1, #all, 2 do
  local f = all[i]
  for j = #f, 1, -1 do
    if string.byte(f, j) == 0 then
      local name = string.sub(f, 1, j - 1)
      values[name] = values[name] or {}
      values[name][string.sub(f, j + 1)] = tonumber(all[i + 1])
      break
    end
  end
end

local function n(v)
  if v == INF then return -1 end
  return v
end

-- The group-wide counters are the fields '\0<name>' (a scope named '': no scope is).
local totals = values[''] or {}
values[''] = nil
local out = {DONE, NOW, totals.fence or 0, redis.call('ZCARD', K_LEASES), redis.call('ZCARD', K_QUEUE)}
-- The histogram keeps its buckets and the sum of the waits; the count is the buckets' total.
local total = 0
for i = 0, #BOUNDS do total = total + (totals['w' .. i] or 0) end
out[#out + 1] = total
out[#out + 1] = totals.wsum or 0
out[#out + 1] = #BOUNDS + 1
for i = 0, #BOUNDS do out[#out + 1] = totals['w' .. i] or 0 end

local rows = {}
local function row(name, flag, max, mq, up)
  local v = values[name] or {}
  rows[#rows + 1] = name
  rows[#rows + 1] = flag
  rows[#rows + 1] = n(max)
  rows[#rows + 1] = n(mq)
  rows[#rows + 1] = up
  for i = 1, #STATS do rows[#rows + 1] = v[STATS[i]] or 0 end
end

for name, m in pairs(META) do
  if not m then
    -- a name looked up while settling deadlines that the spec does not declare
  elseif m.kind == 's' then
    local bname, sname = string.match(name, '^server:([^/]*)/(.*)$')
    local up = redis.call('HGET', K_SRV, srvField(bname, sname, 'up'))
    row(name, 2, m.max, m.mq, (up == '0') and 0 or 1)
  else
    row(name, (m.kind == 'a') and 1 or 0, m.max, m.mq, -1)
  end
end
for name in pairs(values) do
  if not META[name] then
    local parent, pm = keyedParent(name)
    local v = values[name]
    if parent then
      row(name, 0, pm.max, pm.mq, -1)
    elseif (v.in_use or 0) > 0 or (v.queued or 0) > 0 then
      -- Removed by a reconfiguration but still held or waited on: listed until it is idle.
      row(name, 0, INF, INF, -1)
    end
  end
end
out[#out + 1] = #rows / (5 + #STATS)
for i = 1, #rows do out[#out + 1] = rows[i] end
out[#out + 1] = totals.reregistered or 0
out[#out + 1] = totals.lost or 0
out[#out + 1] = totals.learn or 0
out[#out + 1] = totals.epoch or 0
out[#out + 1] = QSET and QD or ''
out[#out + 1] = standing(NOW) and 1 or 0
local flows = redis.call('HGETALL', K_FLOWS)
out[#out + 1] = #flows / 2
for i = 1, #flows, 2 do
  local _, n, g = string.match(flows[i + 1], '^(%d+) (%d+) (%d+)$')
  out[#out + 1] = flows[i]
  out[#out + 1] = tonumber(n) or 0
  out[#out + 1] = tonumber(g) or 0
end
return out
