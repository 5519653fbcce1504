-- What the synchronization primitives of locks.lua share: their waiter lists (core._WaitList,
-- src/sync/waitlist.c: tasks parked in FIFO order, no future per wait) and the binding of a
-- primitive to the first loop that uses it.
local core = require "aloop.core"

local running_loop = core._running_loop
local error = error

local W = {}

-- A new waiter list. q:wake_first() wakes the first waiting task (true if there was one),
-- q:wake_all() every one (returns how many), #q counts them.
W.new = core._WaitList

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

-- Suspends the current task in q (at the front when `front`: a waiter woken for nothing goes
-- back to its place) until it is woken: returns true. Cancelled, it has left q and returns
-- false, the error (CancelledError) and whether it had been woken first: the caller restores
-- its own invariants, passes on a wake-up it consumed and re-raises. `loop` comes from
-- W.bind(self, what, true); `what` names the method in the error raised from a callback.
function W.wait(q, loop, what, front)
  return q:wait(loop, front, what)
end

return W
