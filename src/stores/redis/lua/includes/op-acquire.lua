--[[
  GroupState.acquire, the general path: grants at once, rejects at once, or queues a ticket.
  Run by slotgateAcquire (when its fast path does not apply) and by slotgateBatch, on the state
  the call has read so far; the caller has run start() and flushes afterwards.
  a[o + k] is ARGV[k] of slotgateAcquire (see acquire.lua), n the number of those arguments.
]]
--- @include "settle"
--- @include "state-loss"

local function acquireOp(a, o, n)
  local leaseId, channel, sharded = a[o + 1], a[o + 2], tonumber(a[o + 3])
  local cls, offset = tonumber(a[o + 4]), tonumber(a[o + 5])
  local queueTimeout, ttl = tonumber(a[o + 6]), tonumber(a[o + 7])
  local bname, pname = a[o + 8], a[o + 9]
  local ke, kf, win = tonumber(a[o + 10]) or 0, tonumber(a[o + 11]) or 0, tonumber(a[o + 12]) or 0

  -- ARGV[13] '\0': the flow (rule F, '' for none) and early (rule E, 1 or 0) follow, then the scopes.
  local first, flow, early = 13, nil, false
  if a[o + 13] == '\0' then
    first = 16
    if a[o + 14] ~= '' then flow = a[o + 14] end
    early = a[o + 15] == '1'
  end
  local requested = {}
  for i = first, n do requested[i - first + 1] = a[o + i] end
  -- Before settling: a group found lost or replaced dispatches nothing while it learns.
  detect(ke, kf, win)
  advance()
  prepare(requested, false)
  local learning = group().learn ~= 0

  local fixed = {}
  local function fail(code, detail)
    collect(fixed)
    return {code, detail}
  end

  for i, name in ipairs(requested) do
    local m = META[name]
    if m and m.kind ~= 'n' then return fail(UNKNOWN_SCOPE, i) end
    local s = scope(name)
    if not s then return fail(UNKNOWN_SCOPE, i) end
    fixed[#fixed + 1] = s
  end
  local b, p
  if bname ~= '' then b = bname end
  if pname ~= '' then p = pname end
  local bk, pn
  if b then
    bk = backend(b)
    if not bk then return fail(UNKNOWN_BACKEND, b) end
    fixed[#fixed + 1] = bk.sc
    if p then
      for _, sv in ipairs(bk.servers) do
        if sv.name == p then pn = sv end
      end
      if not pn then return fail(UNKNOWN_SERVER, b .. '/' .. p) end
      fixed[#fixed + 1] = pn.sc
    end
  end

  local ok, sv = false, nil
  if not learning then ok, sv = fit(fixed, b, bk, p, pn) end
  if ok then
    local rec = grant(fixed, bk, sv, p == nil, ttl, 0, leaseId, nil)
    if not rec then return fail(BAD_REQUEST, 'lease id in use') end
    return {GRANTED, leaseId, rec.f, rec.b or '', rec.s or '', NOW + ttl, ttl, nextIn(), group().epoch}
  end

  if queueTimeout <= 0 then
    -- GroupState#countRejection: every full scope; else (no server up) the backend or pinned server.
    local counted = false
    for _, s in ipairs(fixed) do
      if not room(s) then
        count(s, 'rejected_full')
        counted = true
      end
    end
    if not counted then
      local s = (pn and pn.sc) or (bk and bk.sc)
      if s then count(s, 'rejected_full') end
    end
    collect(fixed)
    return {REJECTED, 'full', nextIn(), group().epoch}
  end

  local queueFull = false
  for _, s in ipairs(fixed) do
    if qfull(s) then queueFull = true end
  end
  if queueFull then
    for _, s in ipairs(fixed) do
      if qfull(s) then count(s, 'rejected_queue_full') end
    end
    collect(fixed)
    return {REJECTED, 'queue-full', nextIn(), group().epoch}
  end

  -- Rule E: the wait estimated from the hand-off rate of what it would wait on, behind a queue only.
  if early and not learning then
    local _, B = blocker(fixed, b, bk, p, pn)
    local rate = B and B.queued > 0 and B.hm
    if rate then
      local estimate = (B.queued + 1) * rate
      if estimate > queueTimeout then
        count(B, 'rejected_early')
        collect(fixed)
        return {REJECTED_EARLY, math.ceil(estimate), nextIn(), group().epoch}
      end
    end
  end

  if leaseExists(leaseId) then return fail(BAD_REQUEST, 'lease id in use') end
  -- Enqueue. Arrivals are relative to a base set whenever the queue is empty, so they stay far
  -- below 2^40 however long the group lives.
  -- Ticket ids never repeat, also after the group's data was lost (a server restarted empty, a
  -- flush, an eviction) while waiters still claim or cancel tickets of the old data by id: a fresh
  -- sequence starts at the store clock in microseconds, which an older one could only have reached
  -- at more than 1000 tickets per ms. Ids stay 16 digits in arrival order.
  local g = group()
  local seq = (g.seq == 0 and NOW * 1000 or g.seq) + 1
  local base = g.base
  if base == 0 or redis.call('ZCARD', K_QUEUE) == 0 then base = NOW - BASE_LEAD end
  put(g, 'seq', seq)
  put(g, 'base', base)
  local id = string.format('%016d', seq)
  local names = {}
  for i, s in ipairs(fixed) do
    -- Rule E: on a scope whose queue was empty, the next hand-off interval starts now.
    if s.queued == 0 then put(s, 'ho', NOW) end
    enqueue(s)
    names[i] = s.name
  end
  -- It waits on what blocks it (includes/dispatch), or, fitting while the group learns, on the window.
  local w = blocker(fixed, b, bk, p, pn) or LEARN_KEY
  -- f: the flow it queues under ('' the default flow, nil none), which its leaving counts on.
  local tag, f = fairTag(flow)
  local o = orderOf(cls, tag, math.min(math.max(NOW + offset - base, 0), CLASS_STEP - 1))
  local t = {s = names, b = b, p = p, e = NOW, d = NOW + queueTimeout, t = ttl, l = leaseId, ch = channel, sh = sharded, w = w, o = o, f = f}
  redis.call('HSET', K_TICKETS, id, cjson.encode(t))
  redis.call('ZADD', K_QUEUE, NOW, id)
  redis.call('ZADD', K_WAITS, 0, w .. o .. id)
  redis.call('ZADD', K_TDL, t.d, id)
  due(t.d)
  return {QUEUED, id, queueTimeout, nextIn(), g.epoch}
end
