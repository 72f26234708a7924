--[[
  The queue-wait histogram: upper bounds (ms) of its buckets; a last bucket takes the rest. This is
  WAIT_BUCKETS_MS of src/core/stats.ts (checked when the scripts are loaded).
]]

local BOUNDS = {0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000}
