--[[
  Write-back: flush() writes every counter, balancing state and hint that changed in this call.
  Every script calls it before it returns (also on error paths: settling may have changed state).
]]
--- @include "balance"
--- @include "lease-store"
--- @include "fair"

local function hsetChunks(key, args)
  for i = 1, #args, 200 do redis.call('HSET', key, unpack(args, i, math.min(i + 199, #args))) end
end

local function flush()
  leaseFlush()
  local set, del = {}, {}
  for i = 1, #DIRTY do
    local s = DIRTY[i]
    local name = s.name
    s.dirty = false
    if (s.kind == 'k' and not s.live) or (s.kind == 'x' and s.in_use == 0 and s.queued == 0) then
      -- Idle keys, and idle scopes a reconfiguration removed, leave the hash (core: #collect/retire).
      for j = 1, #STATS do del[#del + 1] = name .. '\0' .. STATS[j] end
      for j = 1, #HANDOFF do del[#del + 1] = name .. '\0' .. HANDOFF[j] end
    else
      -- A key collected and back within the call: its hand-off rate starts afresh.
      if s.hreset then
        for j = 1, #HANDOFF do
          if s[HANDOFF[j]] == nil then del[#del + 1] = name .. '\0' .. HANDOFF[j] end
        end
      end
      local keys = s.kind == 'a' -- only a keyed limit's aggregate row counts keys
      if s.ch then
        for st in pairs(s.ch) do
          if keys or st ~= 'keys' then
            set[#set + 1] = name .. '\0' .. st
            set[#set + 1] = s[st]
          end
        end
      end
      if s.dl then
        for st, d in pairs(s.dl) do
          if d ~= 0 and (keys or st ~= 'keys') then redis.call('HINCRBY', K_SC, name .. '\0' .. st, d) end
        end
      end
    end
    s.ch, s.dl, s.hreset = nil, nil, nil
  end
  DIRTY = {}
  hsetChunks(K_SC, set)
  for i = 1, #del, 200 do redis.call('HDEL', K_SC, unpack(del, i, math.min(i + 199, #del))) end
  local srv
  for bname, b in pairs(BK) do
    if b.dirty then
      b.dirty = false
      srv = srv or {}
      srv[#srv + 1] = bname .. '\0last'
      srv[#srv + 1] = b.last
      for _, sv in ipairs(b.servers) do
        srv[#srv + 1] = srvField(bname, sv.name, 'cw')
        srv[#srv + 1] = sv.cw
      end
    end
  end
  if srv then hsetChunks(K_SRV, srv) end
  flowFlush()
  if ND ~= ND0 or NG ~= NG0 then
    redis.call('HSET', K_CFG, '\0nd', ND, '\0ng', NG)
    ND0, NG0 = ND, NG
  end
end
