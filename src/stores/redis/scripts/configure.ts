import { defineScript } from "./define.js";

export const configure = defineScript(
  "slotgateConfigure",
  "replaces the group's limits (GroupState.configure); counters and holders are kept.",
  `    ARGV[1]  the GroupSpec as JSON`,
  `    {nextIn}`,
  String.raw`
local spec = ARGV[1]
local old
if loadCfg() then
  advance() -- deadlines up to now are settled under the limits they were set with
  flush()
  old = CFG
end
SC, BK = {}, {}
redis.call('SET', K_CFG, spec)
loadCfg()
for bname, b in pairs(CFG.backends) do
  local declared = {}
  for _, s in ipairs(b.servers) do
    declared[s.name] = true
    -- The runtime up flag follows the spec only when the spec's own down flag changed.
    local down = (s.down == true) and '1' or '0'
    if redis.call('HGET', K_SRV, srvField(bname, s.name, 'sd')) ~= down then
      redis.call('HSET', K_SRV, srvField(bname, s.name, 'sd'), down,
        srvField(bname, s.name, 'up'), (down == '1') and '0' or '1')
    end
  end
  -- A server dropped from the backend loses its state; if it comes back, it starts afresh.
  local was = old and old.backends[bname]
  if was then
    for _, s in ipairs(was.servers) do
      if not declared[s.name] then
        redis.call('HDEL', K_SRV, srvField(bname, s.name, 'sd'), srvField(bname, s.name, 'up'),
          srvField(bname, s.name, 'cw'))
      end
    end
  end
  local last = tonumber(redis.call('HGET', K_SRV, bname .. '\0last'))
  if last and last > #b.servers - 1 then redis.call('HSET', K_SRV, bname .. '\0last', #b.servers - 1) end
end
dispatch(nil)
flush()
return {nextIn()}
`,
);
