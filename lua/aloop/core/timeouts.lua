-- aio.timeout(delay): a to-be-closed scope that cancels the current task when the delay
-- expires and turns that cancellation into aio.TimeoutError when it leaves the scope:
--   local t <close> = aio.timeout(1)   -- the analog of `async with asyncio.timeout(1):`
local core = require "aloop.core"

local timeouts = {}
local Timeout = { __name = "aloop.Timeout" }
Timeout.__index = Timeout

local function expire(t)
  t.handle = nil
  t.state = "expiring"
  t.task:cancel()
end

function timeouts.timeout(delay)
  local task = core.current_task()
  if not task then
    error(core._not_in_task("timeout"), 2)
  end
  if delay ~= nil and type(delay) ~= "number" then
    error("aloop.timeout: delay must be a number or nil", 2)
  end
  local t = setmetatable({ task = task, state = "active", cancelling = task:cancelling() }, Timeout)
  t.loop = task:get_loop()
  if delay ~= nil then t:reschedule(t.loop:time() + delay) end
  return t
end

-- aio.timeout_at(when): the same with a deadline on loop:time().
function timeouts.timeout_at(when)
  local t = timeouts.timeout(nil)
  if when ~= nil then t:reschedule(when) end
  return t
end

function Timeout:when() return self.deadline end

function Timeout:expired() return self.state == "expiring" or self.state == "expired" end

function Timeout:reschedule(when)
  if self.state ~= "active" then
    error(("aloop.timeout: cannot reschedule a timeout that is %s"):format(self.state), 2)
  end
  if self.handle then self.handle:cancel() end
  self.handle, self.deadline = nil, when
  if when ~= nil then
    if when <= self.loop:time() then
      self.handle = self.loop:call_soon(expire, self)
    else
      self.handle = self.loop:call_at(when, expire, self)
    end
  end
end

function Timeout:__close(err)
  if self.handle then
    self.handle:cancel()
    self.handle = nil
  end
  if self.state == "expiring" then
    self.state = "expired"
    if self.task:uncancel() <= self.cancelling and core.iserror(err, core.CancelledError) then
      error(core.TimeoutError(), 0)
    end
  elseif self.state == "active" then
    self.state = "finished"
  end
end

function Timeout:__tostring()
  return ("<Timeout %s when=%s>"):format(self.state, tostring(self.deadline))
end
return timeouts
