import { defineScript } from "./define.js";

export const serverState = defineScript(
  "slotgateServerState",
  "marks a server up or down (GroupState.setServerState); up dispatches the queue.",
  `    ARGV[1]  backend name
    ARGV[2]  server name
    ARGV[3]  1: up, 0: down`,
  `    {0, '', nextIn}  done
    {-2, backend}    unknown backend    {-3, 'backend/server'}  unknown server
    {-100}           the group has no spec`,
  String.raw`
local bname, sname, up = ARGV[1], ARGV[2], ARGV[3]
if not start() then return {NOT_CONFIGURED} end
advance()
local b = cold().backend(bname)
if not b then
  flush()
  return {-2, bname}
end
local sv
for _, s in ipairs(b.servers) do
  if s.name == sname then sv = s end
end
if not sv then
  flush()
  return {-3, bname .. '/' .. sname}
end
redis.call('HSET', K_SRV, srvField(bname, sname, 'up'), up == '1' and '1' or '0')
sv.up = (up == '1')
if up == '1' then cold().dispatch(nil) end
flush()
return {0, '', nextIn()}
`,
);
