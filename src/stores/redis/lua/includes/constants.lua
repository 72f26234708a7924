--[[
  Constants shared by the scripts. BOUNDS is WAIT_BUCKETS_MS of src/core/stats.ts (checked when the
  scripts are loaded, in src/stores/redis/scripts/index.ts).
]]

local INF = math.huge
local NONE = 1e15 -- "no deadline": later than any store time in ms
-- Upper bounds (ms) of the queue-wait histogram's buckets; a last bucket takes the rest.
local BOUNDS = {0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000}
-- How long an outcome kept for a waiter stays when nobody claims it.
local GRANT_KEEP_MS = 60000
-- Queue score = (class + 2048) * 2^40 + (arrival + offset - base): at most 2^52, exact in a double.
local CLASS_STEP = 1099511627776
-- How far before the first ticket's arrival a queue's score base is set (a negative offset stays above it).
local BASE_LEAD = 1048576
-- Every counter of a scope, as stats lists them.
local STATS = {'in_use', 'queued', 'peak_in_use', 'peak_queued', 'granted', 'rejected_full',
  'rejected_queue_full', 'queue_timeouts', 'aborted', 'expired', 'released', 'keys'}
