-- aio.TaskGroup(): structured concurrency as a to-be-closed scope.
--   local tg <close> = aio.TaskGroup(); tg:create_task(fn, ...)
-- Leaving the scope waits for every child. The first child that fails cancels the others
-- (and the body, if it is still running); its error is re-raised from the scope (several
-- errors: an aio.ExceptionGroup).
-- When the body itself raises, the children are cancelled and still awaited: inside a task,
-- __close runs in the coroutine and may suspend even while an error unwinds (Lua 5.4.4+).
local core = require "aloop.core"

local taskgroup = {}
local TaskGroup = { __name = "aloop.TaskGroup" }
TaskGroup.__index = TaskGroup

function taskgroup.TaskGroup()
  local parent = core.current_task()
  if not parent then error(core._not_in_task("TaskGroup"), 2) end
  return setmetatable({
    parent = parent, loop = parent:get_loop(), tasks = {}, n = 0, errors = {},
    aborting = false, exiting = false, closed = false,
  }, TaskGroup)
end

function TaskGroup:_abort()
  self.aborting = true
  for t in pairs(self.tasks) do t:cancel() end
end

function TaskGroup:_on_done(t)
  self.tasks[t] = nil
  self.n = self.n - 1
  if self.n == 0 and self.waiter and not self.waiter:done() then self.waiter:set_result() end
  if t:cancelled() then return end
  local err = t:exception()
  if err == nil then return end
  self.errors[#self.errors + 1] = err
  if not self.aborting then
    self:_abort()
    if not self.exiting and not self.parent:done() then
      self.parent_cancelled = true
      self.parent:cancel()
    end
  end
end

function TaskGroup:create_task(aw, ...)
  if self.closed then error("aloop.TaskGroup: the group is finished", 2) end
  if self.aborting then error("aloop.TaskGroup: the group is shutting down", 2) end
  local t = self.loop:create_task(aw, ...)
  self.tasks[t] = true
  self.n = self.n + 1
  t:add_done_callback(function(tt) self:_on_done(tt) end)
  return t
end

-- Leaving the scope (asyncio 3.13's __aexit__): waits for the children; the cancel this group
-- requested of its task is withdrawn (uncancel) whatever the scope ends with, so nested groups
-- leave cancelling() as they found it. One failure (a child's or the body's) is re-raised as it
-- is, several as an aio.ExceptionGroup in the order they failed. A cancel() from outside that arrived meanwhile
-- (its CancelledError is replaced by the children's errors) stays requested: the task's next
-- suspension raises CancelledError (CPython gh-116720).
function TaskGroup:__close(err)
  self.exiting = true
  local cancel_err
  if err ~= nil then
    if core.iserror(err, core.CancelledError) then
      cancel_err = err
    else -- the body's own error joins the children's
      self.errors[#self.errors + 1] = err
    end
    if not self.aborting then self:_abort() end
  end
  if coroutine.isyieldable() then
    while self.n > 0 do
      self.waiter = self.loop:create_future()
      local ok, e = pcall(core.await_future, self.waiter)
      if not ok then
        cancel_err = cancel_err or e
        if not self.aborting then self:_abort() end
      end
    end
  end
  self.closed = true
  local parent = self.parent
  if self.parent_cancelled then
    self.parent_cancelled = false
    if parent:uncancel() == 0 then cancel_err = nil end -- it was only ours
  end
  local errors = self.errors
  if #errors > 0 then
    if cancel_err and not parent:done() then -- keep the outside cancel for the next suspension
      parent:uncancel()
      parent:cancel()
    end
    if #errors == 1 then error(errors[1], 0) end
    error(core.ExceptionGroup(("unhandled errors in a TaskGroup (%d sub-exceptions)"):format(
      #errors), { exceptions = errors }), 0)
  end
  if cancel_err then error(cancel_err, 0) end
end

function TaskGroup:__tostring()
  return ("<TaskGroup tasks=%d%s>"):format(self.n, self.aborting and " cancelling" or "")
end

return taskgroup
