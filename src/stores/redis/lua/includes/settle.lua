--[[
  GroupState#advance: settles every deadline that has passed, in time order; and nextIn, the
  time to the next deadline that every reply carries.
]]
--- @include "dispatch"

-- GroupState#advance: settles every deadline <= NOW in time order, as if each had been handled at
-- its own moment (a queue timeout first at the same instant), dispatching after each expiry; then
-- drops outcomes nobody claimed in time. The end of a learning window (rule 12) is one of these
-- deadlines: from then on the queue is dispatched again. Leaves the hints exact.
-- Rule D, codel: while the queue stands, the oldest ticket is answered (a time-out) once it has
-- waited the target: at max(aboveSince + interval, its arrival + target). The time of that next
-- drop, or nil; and the oldest ticket's id.
local function codelAt(g)
  if QD ~= 'codel' or g.above == -1 then return nil end
  local o = redis.call('ZRANGE', K_QUEUE, 0, 0, 'WITHSCORES')
  if not o[2] then return nil end
  return math.max(g.above + QI, tonumber(o[2]) + QT), o[1]
end

-- A ticket's end by time-out (how: 'queue_timeouts', or 'codel_dropped' for a CoDel drop).
local function timeOut(id, how, keepUntil)
  local raw = redis.call('HGET', K_TICKETS, id)
  local tk = raw and loadTicket(id, raw)
  removeTicket(id, tk)
  if tk then
    for _, s in ipairs(tk.fx) do dequeue(s, how) end
    collect(tk.fx)
    leave(tk, false)
    local msg = cjson.encode({k = id, o = 't'})
    keep(id, msg, math.max(keepUntil or tk.d, NOW) + GRANT_KEEP_MS)
    wake(tk, msg)
  end
end

local function settleAll()
  local g = group()
  while NOW >= ND do
    local t = redis.call('ZRANGE', K_TDL, 0, 0, 'WITHSCORES')
    local l = redis.call('ZRANGE', K_LEASES, 0, 0, 'WITHSCORES')
    local tAt = t[2] and tonumber(t[2]) or nil
    local lAt = l[2] and tonumber(l[2]) or nil
    local eAt = g.learn ~= 0 and g.learn or nil
    local cAt, oldest = codelAt(g)
    local tDue = tAt ~= nil and tAt <= NOW
    local lDue = lAt ~= nil and lAt <= NOW
    local cDue = cAt ~= nil and cAt <= NOW
    -- At one instant: time-outs, then lease expiries, then CoDel drops.
    if eAt ~= nil and eAt <= NOW and (not tDue or eAt < tAt) and (not lDue or eAt < lAt) and (not cDue or eAt < cAt) then
      put(g, 'learn', 0)
      dispatch(nil)
    elseif tDue and (not lDue or tAt <= lAt) and (not cDue or tAt <= cAt) then
      timeOut(t[1], 'queue_timeouts')
    elseif cDue and (not lDue or cAt < lAt) then
      timeOut(oldest, 'codel_dropped', cAt)
    elseif lDue then
      -- Leases that expire at the same instant expire together, then the queue is dispatched
      -- once: the order of their ids must not decide which ticket gets a slot.
      local opened
      for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_LEASES, lAt, lAt)) do
        local raw = redis.call('HGET', K_LEASE, id)
        if raw then
          local rec = cjson.decode(raw)
          if rec.k then
            -- Granted from the queue and never renewed: its waiter may not have heard (a lost
            -- message) and can still claim the grant, now of an expired lease.
            keep(rec.k, outcome(rec.k, id, rec, rec.g + rec.t), NOW + GRANT_KEEP_MS)
          end
          for name, s in pairs(endLease(id, rec, 'expired') or {}) do
            opened = opened or {}
            opened[name] = s
          end
        end
        redis.call('ZREM', K_LEASES, id)
      end
      if opened then dispatch(opened) end
    else
      -- The standing transition is a deadline too (the core's nextDeadline has it).
      local sAt = QD ~= 'fifo' and g.above ~= -1 and g.above + QI or nil
      if sAt and sAt <= NOW then sAt = nil end
      ND = math.min(tAt or NONE, lAt or NONE, eAt or NONE, cAt or NONE, sAt or NONE)
    end
  end
  if NOW >= NG then
    local stale = redis.call('ZRANGEBYSCORE', K_GEXP, '-inf', NOW, 'LIMIT', 0, 256)
    if #stale > 0 then
      redis.call('HDEL', K_GRANTS, unpack(stale))
      redis.call('ZREM', K_GEXP, unpack(stale))
    end
    if #stale < 256 then
      local g = redis.call('ZRANGE', K_GEXP, 0, 0, 'WITHSCORES')
      NG = g[2] and tonumber(g[2]) or NONE
    end
  end
end

-- Settling reads the expiry set as it goes: lease writes go straight to Redis meanwhile.
local function settle()
  leaseDirect(settleAll)
end

-- GroupState#advance; nothing to do before the hints.
local function advance()
  if NOW >= ND or NOW >= NG then settle() end
end

-- ms until the next lease expiry or queue deadline (or earlier: the hint), -1 when there is none.
local function nextIn()
  if ND >= NONE then return -1 end
  return math.max(0, ND - NOW)
end
