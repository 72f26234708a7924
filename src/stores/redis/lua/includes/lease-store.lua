--[[
  The lease records (key lease: id -> cjson record) and their expiries (key leases). A script that
  writes many of them (slotgateBatch) calls leaseBuffer() first: from then on the writes collect
  here and leaseFlush() sends them as one HSET, one HDEL, one ZADD and one ZREM, each record
  encoded once, and a lease granted and ended in the same call is never written at all. Without
  leaseBuffer() every write goes straight to Redis, as one command each.
  Reads see the writes of this call either way. leasePrefetch(ids) reads the records of the leases
  a call will touch in one HMGET; settling drops what it read (it writes past the buffer).
]]

local LBUF = nil -- id -> record table, or false: ended in this call (nil: not written in this call)
local LEXP = {} -- id -> expiry, or false: dropped from the set in this call
local LNEW = {} -- id -> true: not in the hash when the buffer was last flushed
local LORDER, LSEEN = {}, {} -- the ids written since the last flush, once each, in order
local LPRE = nil -- id -> raw record, or false: none (read by leasePrefetch, valid until a flush)

local function leasePrefetch(ids)
  if #ids == 0 then return end
  local raw = hmget(K_LEASE, ids)
  LPRE = {}
  for i = 1, #ids do LPRE[ids[i]] = raw[i] or false end
end

-- The stored record of lease id (raw), or false.
local function stored(id)
  if LPRE then
    local raw = LPRE[id]
    if raw ~= nil then return raw end
  end
  return redis.call('HGET', K_LEASE, id)
end

local function leaseBuffer()
  LBUF = {}
end

local function touched(id)
  if not LSEEN[id] then
    LSEEN[id] = true
    LORDER[#LORDER + 1] = id
  end
end

-- The record of lease id (a table, decoded), or nil when there is none.
local function leaseRec(id)
  if LBUF then
    local r = LBUF[id]
    if r ~= nil then return r or nil end
  end
  local raw = stored(id)
  return raw and cjson.decode(raw) or nil
end

-- Writes the record of lease id and, when exp is given, its expiry.
local function leasePut(id, rec, exp)
  if LBUF then
    touched(id)
    LBUF[id] = rec
    if exp then LEXP[id] = exp end
    return
  end
  redis.call('HSET', K_LEASE, id, cjson.encode(rec))
  if exp then redis.call('ZADD', K_LEASES, exp, id) end
end

-- Moves the expiry of lease id (its record unchanged).
local function leaseExpire(id, exp)
  if LBUF then
    touched(id)
    LEXP[id] = exp
    return
  end
  redis.call('ZADD', K_LEASES, exp, id)
end

-- Whether lease id has a record.
local function leaseExists(id)
  if LBUF and LBUF[id] ~= nil then return LBUF[id] ~= false end
  if LPRE and LPRE[id] ~= nil then return LPRE[id] ~= false end
  return redis.call('HEXISTS', K_LEASE, id) == 1
end

-- Writes a new lease; false (nothing written) when the id is in use.
local function leaseCreate(id, rec, exp)
  if not LBUF then
    if redis.call('HSETNX', K_LEASE, id, cjson.encode(rec)) == 0 then return false end
    redis.call('ZADD', K_LEASES, exp, id)
    return true
  end
  local r = LBUF[id]
  if r then return false end
  if r == nil then
    if leaseExists(id) then return false end
    LNEW[id] = true
  end
  leasePut(id, rec, exp)
  return true
end

-- Drops the record of lease id and its expiry.
local function leaseDel(id)
  if LBUF then
    touched(id)
    LBUF[id], LEXP[id] = false, false
    return
  end
  redis.call('HDEL', K_LEASE, id)
  redis.call('ZREM', K_LEASES, id)
end

local function leaseSend(cmd, key, args, per)
  local step = 200 * per
  for i = 1, #args, step do redis.call(cmd, key, unpack(args, i, math.min(i + step - 1, #args))) end
end

-- Sends the buffered writes (if any), so that Redis holds what the reads above see.
local function leaseFlush()
  LPRE = nil
  if not LBUF or #LORDER == 0 then return end
  local hs, hd, za, zr = {}, {}, {}, {}
  for _, id in ipairs(LORDER) do
    local r, x = LBUF[id], LEXP[id]
    -- Granted and ended since the last flush: Redis never held it.
    if not (LNEW[id] and r == false) then
      if r then
        hs[#hs + 1] = id
        hs[#hs + 1] = cjson.encode(r)
      elseif r == false then
        hd[#hd + 1] = id
      end
      if x then
        za[#za + 1] = x
        za[#za + 1] = id
      elseif x == false then
        zr[#zr + 1] = id
      end
    end
  end
  LBUF, LEXP, LNEW, LORDER, LSEEN = {}, {}, {}, {}, {}
  leaseSend('HSET', K_LEASE, hs, 2)
  leaseSend('HDEL', K_LEASE, hd, 1)
  leaseSend('ZADD', K_LEASES, za, 2)
  leaseSend('ZREM', K_LEASES, zr, 1)
end

-- Runs fn with every write straight to Redis (what settling needs: it reads the expiry set as it
-- goes), the buffer flushed before.
local function leaseDirect(fn)
  if not LBUF then return fn() end
  leaseFlush()
  local saved = LBUF
  LBUF = nil
  fn()
  LBUF = saved
end
