--[[
  GroupState.renew, the general path: extends a lease to now + ttl; while the group learns (rule
  12), re-creates a lease its state lost. Run by slotgateRenew (when its fast path does not apply)
  and by slotgateBatch; the caller has read the lease record (rec, decoded; nil when there is none) and
  run start(), and flushes afterwards. a[o + k] is ARGV[k] of slotgateRenew (see renew.lua), n the
  number of those arguments.
]]
--- @include "settle"
--- @include "state-loss"

local function renewOp(a, o, n, rec)
  local id, ttl = a[o + 1], tonumber(a[o + 2])
  if rec then
    advance()
    if not ENDED[id] then
      if rec.k or rec.t ~= ttl then
        -- The holder has its grant: its waiter no longer needs to find it through the record.
        rec.k, rec.w, rec.t = nil, nil, ttl
        leasePut(id, rec)
      end
      leaseExpire(id, NOW + ttl)
      due(NOW + ttl)
      return {RENEWED, NOW + ttl, nextIn(), group().epoch}
    end
  end
  -- Gone: expired or released here, or lost with the group's state (rule 12).
  local ke, kf, win = tonumber(a[o + 3]) or 0, tonumber(a[o + 4]) or 0, tonumber(a[o + 5]) or 0
  if ke == 0 then
    advance()
    return {NOT_FOUND, nextIn()}
  end
  detect(ke, kf, win)
  advance()
  local g = group()
  if ke >= g.epoch then return {NOT_FOUND, nextIn(), g.epoch} end
  if g.learn ~= 0 then
    local bname, sname = a[o + 6], a[o + 7]
    local names, seen = {}, {}
    for i = 8, n do names[#names + 1] = a[o + i] end
    if bname ~= '' then
      names[#names + 1] = 'backend:' .. bname
      if sname ~= '' then names[#names + 1] = 'server:' .. bname .. '/' .. sname end
    end
    prepare(names, false)
    local chain, fits = {}, true
    for _, name in ipairs(names) do
      local s = not seen[name] and scope(name)
      seen[name] = true
      if s then chain[#chain + 1] = s end
      if not s or not room(s) then
        fits = false
        break
      end
    end
    if fits then
      -- Counted against every max, as a grant, so that a lost lease is never doubled; its fence is kept.
      local rec = {c = names, f = string.format('%d', kf), g = NOW, t = ttl}
      if bname ~= '' then rec.b = bname end
      if sname ~= '' then rec.s = sname end
      leasePut(id, rec)
      for _, s in ipairs(chain) do occupy(s, false) end
      if kf > g.fence then put(g, 'fence', kf) end
      leaseExpire(id, NOW + ttl)
      due(NOW + ttl)
      -- Holders of a longer lease renew less often: the window covers one of their TTLs.
      if g.lstart + ttl > g.learn then
        put(g, 'learn', g.lstart + ttl)
        due(g.learn)
      end
      bump(g, 'reregistered', 1)
      return {REREGISTERED, NOW + ttl, nextIn(), g.epoch}
    end
    collect(chain)
  end
  bump(g, 'lost', 1)
  return {LEASE_LOST, nextIn(), g.epoch}
end
