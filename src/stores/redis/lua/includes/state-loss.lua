--[[
  SPEC §2 rule 12: noticing that the group's state was lost or replaced, and learning windows.
]]
--- @include "scopes"

-- Starts (or extends) a learning window: a new epoch, no grant until NOW + win, during which
-- holders re-register their leases (renew). kf, ke: the highest fence and the epoch the caller
-- knows, which the counter and the new epoch must not fall below.
local function learn(win, kf, ke)
  local g = group()
  put(g, 'epoch', math.max(NOW * 1000, g.epoch + 1, ke + 1))
  put(g, 'blind', 0)
  if g.learn == 0 then put(g, 'lstart', NOW) end
  local untilAt = math.max(g.learn, NOW + win)
  put(g, 'learn', untilAt)
  if kf > g.fence then put(g, 'fence', kf) end
  due(untilAt)
end

-- Rule 12: finds out whether the group's state was lost or replaced since the caller last saw it.
-- ke: the group epoch the caller knows (0: none), kf: the highest fence it knows, win: its longest
-- lease TTL. The epoch is set when the state is created and changed by every learning window, so
-- - no epoch, and the caller knew one: the state was lost (FLUSHALL, a restart empty);
-- - a caller that knows a later epoch, or a higher fence than the counter: the state went back
--   (a replica that missed writes was promoted);
-- - an epoch created by a caller that knew nothing (a fresh node after a loss), and a caller that
--   knew an older one: the loss is found late, still before the holders' leases are doubled.
-- Each of these starts a learning window; a group created by a caller that knew nothing is 'blind'.
local function detect(ke, kf, win)
  local g = group()
  local e = g.epoch
  if e == 0 then
    if ke ~= 0 then return learn(win, kf, ke) end
    put(g, 'epoch', NOW * 1000)
    put(g, 'blind', 1)
  elseif ke > e or (ke == e and kf > g.fence) or (ke ~= 0 and ke < e and g.blind == 1) then
    learn(win, kf, ke)
  end
end
