-- Waiter lists for the synchronization primitives and queues (locks.lua, queues.lua): a FIFO of
-- waiter futures with head/tail indexes (O(1) at both ends), the binding of a primitive to the
-- first loop that uses it, and the one suspension routine they all share.
-- A cancelled waiter leaves its slot until its own task removes it (or a pop skips it).
local core = require "aloop.core"

local running_loop, await_future = core._running_loop, core.await_future
local done, set_result, cancelled, cancel = core.Future.done, core.Future.set_result,
  core.Future.cancelled, core.Future.cancel
local create_future = core.Loop.create_future
local pcall, error = pcall, error

local W = {}

-- A list: q[h..t] holds waiter futures (nil where one was removed); n counts the non-nil slots.
function W.new() return { h = 1, t = 0, n = 0 } end

-- Pops the first waiter that is still pending (skips cancelled ones); nil if there is none.
local function pop(q)
  local h, t = q.h, q.t
  while h <= t do
    local f = q[h]
    q[h] = nil
    h = h + 1
    if f ~= nil then
      local n = q.n - 1
      q.n = n
      if not done(f) then
        if n == 0 then q.h, q.t = 1, 0 else q.h = h end
        return f
      end
    end
  end
  q.h, q.t, q.n = 1, 0, 0
  return nil
end
W.pop = pop

-- Wakes the first pending waiter with `value`; true if there was one.
function W.wake_first(q, value)
  if q.n == 0 then return false end
  local f = pop(q)
  if f == nil then return false end
  set_result(f, value)
  return true
end

-- Wakes every pending waiter with `value`; returns how many.
function W.wake_all(q, value)
  local k = 0
  while q.n > 0 do
    local f = pop(q)
    if f == nil then break end
    set_result(f, value)
    k = k + 1
  end
  return k
end

-- Did this waiter get its wake-up (a result, not a cancellation)? A waiter still pending (its
-- task was interrupted another way) is cancelled first, so it can no longer be woken.
function W.was_woken(f) return not (cancelled(f) or cancel(f)) end

local function not_in_task(what, level)
  error(core._not_in_task(what), level + 1)
end

-- The loop a primitive works on: it is bound to the first running loop that uses it; any other
-- running loop is an error. Outside a running loop, nil (the primitive is not bound), unless
-- `suspending` (a call that may suspend needs a task). Errors point at the method's caller.
function W.bind(self, what, suspending)
  local loop = running_loop()
  local mine = self._loop
  if loop ~= mine then
    if loop == nil then
      if suspending then not_in_task(what, 3) end
    elseif mine ~= nil then
      error(("aloop.%s: %s is bound to a different event loop (a primitive belongs to the first "
        .. "loop that uses it)"):format(what, tostring(self)), 3)
    else
      self._loop = loop
    end
  elseif loop == nil and suspending then
    not_in_task(what, 3)
  end
  return loop
end

-- Suspends the current task on a new waiter future queued in q (at the front when `front`:
-- a waiter woken for nothing goes back to its place). Returns true when woken; otherwise false,
-- the error (CancelledError) and the waiter, after taking the waiter out of q: the caller
-- restores its own invariants, passes on a wake-up it consumed (W.was_woken) and re-raises.
-- `loop` comes from W.bind(self, what, true). From a callback (a running loop but no task),
-- the await raises "not inside a task" and the waiter is taken out again like a cancelled one.
function W.wait(q, loop, front)
  local f = create_future(loop)
  local i
  if front then
    i = q.h - 1
    q.h = i
  else
    i = q.t + 1
    q.t = i
  end
  q[i] = f
  q.n = q.n + 1
  local ok, err = pcall(await_future, f)
  if ok then return true end
  if q[i] == f then
    q[i] = nil
    local n = q.n - 1
    q.n = n
    if n == 0 then q.h, q.t = 1, 0 end
  end
  return false, err, f
end

return W
