--[[
  Constants shared by the scripts (numbers only: a table would be made on every call).
]]

local INF = math.huge
local NONE = 1e15 -- "no deadline": later than any store time in ms
-- How long an outcome kept for a waiter stays when nobody claims it.
local GRANT_KEEP_MS = 60000
-- Queue score = (class + 2048) * 2^40 + (arrival + offset - base): at most 2^52, exact in a double.
local CLASS_STEP = 1099511627776
-- How far before the first ticket's arrival a queue's score base is set (a negative offset stays above it).
local BASE_LEAD = 1048576
