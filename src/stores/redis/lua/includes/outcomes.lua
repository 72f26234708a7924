--[[
  Outcomes for waiters (keys grants, gexp): the grant or time-out message of a ticket, kept until
  claimed, and published on (or, for the caller's own node, returned to) its wake channel.
]]
--- @include "scopes"
--- @include "lease-store"

-- The grant message for the waiter of ticket: lease id, the lease record, its expiry, and the
-- group's epoch (a string, as the fence: cjson precision).
local function outcome(ticket, leaseId, rec, exp)
  return cjson.encode({k = ticket, o = 'g', l = leaseId, f = rec.f, x = exp, t = rec.t, w = rec.w, b = rec.b, s = rec.s, e = string.format('%d', group().epoch)})
end

-- Keeps an outcome for a ticket's waiter until it is claimed or at, so a lost message cannot
-- strand it. A grant needs no copy while its lease lives: the waiter claims it through the lease
-- record, which names the ticket (k) until the holder renews it.
local function keep(ticket, msg, at)
  redis.call('HSET', K_GRANTS, ticket, msg)
  redis.call('ZADD', K_GEXP, at, ticket)
  if at < NG then NG = at end
end

-- Wake-ups for the caller's own node (channel LOCAL_CH, set by a script that returns them in its
-- reply) are collected in LOCAL instead of published.
local LOCAL, LOCAL_CH = {}, nil

local function wake(t, msg)
  if t.ch == LOCAL_CH then
    LOCAL[#LOCAL + 1] = msg
  elseif t.sh == 1 then
    redis.call('SPUBLISH', t.ch, msg)
  else
    redis.call('PUBLISH', t.ch, msg)
  end
end

-- The grant of ticket as its waiter would have heard it, while its lease lives and is unrenewed.
local function leaseOutcome(ticket, leaseId)
  if leaseId == nil or leaseId == '' then return nil end
  local rec = leaseRec(leaseId)
  if not rec then return nil end
  if rec.k ~= ticket then return nil end
  return outcome(ticket, leaseId, rec, rec.g + rec.t)
end
