--[[
  Reply status codes: each means one thing in every script. This mirrors REPLY in
  src/stores/redis/scripts/replies.ts, which documents each code (checked when the scripts are loaded).
]]

local NOT_FOUND = 0
local GRANTED = 1
local REJECTED = 2
local QUEUED = 3
local RELEASED = 4
local RENEWED = 5
local REREGISTERED = 6
local LEASE_LOST = 7
local CANCELLED = 8
local OUTCOME = 9
local INSTALLED = 10
local KEPT = 11
local SPEC_CONFLICT = 12
local DONE = 13
local REJECTED_EARLY = 14
local UNKNOWN_SCOPE = -1
local UNKNOWN_BACKEND = -2
local UNKNOWN_SERVER = -3
local BAD_REQUEST = -4
local NOT_CONFIGURED = -100
