-- The Lua-side loop methods and task creation (aloop.core.loop): loop:run_until_complete,
-- aio.create_task and aio.ensure_future, and default_loop (the running loop, else the current
-- one) that the other modules use.
local core = require "aloop.core"

local Loop = core.Loop
local isfuture = core.isfuture
local running_loop, get_event_loop = core._running_loop, core.get_event_loop
local type = type

local loop = {}

-- The running loop, else the current loop of this thread.
function loop.default_loop() return running_loop() or get_event_loop() end
local default_loop = loop.default_loop

function loop.create_task(aw, ...) return default_loop():create_task(aw, ...) end

-- A future stays itself; anything else becomes a task (on opts.loop when given).
function loop.ensure_future(aw, ...)
  if isfuture(aw) then return aw end
  local opts = ...
  local on = type(aw) ~= "function" and type(opts) == "table" and opts.loop or default_loop()
  return on:create_task(aw, ...)
end

function Loop:run_until_complete(aw, ...)
  if self:is_closed() then error("aloop: Event loop is closed", 2) end
  if self:is_running() then error("aloop: This event loop is already running", 2) end
  local fut = isfuture(aw) and aw or self:create_task(aw, ...)
  if fut:get_loop() ~= self then
    error("aloop: the future belongs to a different loop", 2)
  end
  local this = self
  -- A future that failed with KeyboardInterrupt does not stop the loop: the interrupt leaves
  -- run_forever by itself, and a stop queued behind it would end the next run at once
  -- (CPython issue 22429).
  local function stop(f)
    if not f:cancelled() and core.iserror(f:exception(), core.KeyboardInterrupt) then return end
    this:stop()
  end
  fut:add_done_callback(stop)
  local ok, err = pcall(self.run_forever, self)
  fut:remove_done_callback(stop)
  if not ok then
    -- e.g. KeyboardInterrupt: raised here; if the future failed with it too, it is retrieved
    if fut:done() and not fut:cancelled() then fut:exception() end
    error(err, 0)
  end
  if not fut:done() then error("aloop: Event loop stopped before Future completed.", 2) end
  return fut:result()
end

return loop
