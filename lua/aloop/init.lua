-- aloop: the public table (shared/API.md). The C core (aloop.core) provides loops, handles,
-- futures, tasks and sleep; this file adds coroutine objects, the Lua-side loop methods
-- (run_until_complete, create_task), aio.run and the task combinators (tasks.lua).
local core = require "aloop.core"

local aio = {}
for k, v in pairs(core) do
  if type(k) == "string" and k:sub(1, 1) ~= "_" and k ~= "Loop" and k ~= "Future" and k ~= "Task" then
    aio[k] = v
  end
end

local Loop = core.Loop
local isfuture = core.isfuture
local running_loop = core._running_loop
local unpack, pack, select, type = table.unpack, table.pack, select, type

aio.FIRST_COMPLETED = "FIRST_COMPLETED"
aio.FIRST_EXCEPTION = "FIRST_EXCEPTION"
aio.ALL_COMPLETED = "ALL_COMPLETED"

---------------------------------------------------------------------------------------------
-- Coroutine objects: a deferred call fn(...) (the analog of calling an `async def`).

local Coro = { __name = "aloop.Coroutine" }
Coro.__index = Coro

local function callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

function aio.coro(fn, ...)
  if not callable(fn) then
    error("aloop.coro: a function expected, got " .. type(fn), 2)
  end
  local c = setmetatable({ fn = fn, n = select("#", ...), ... }, Coro)
  core._debug_note(c) -- debug mode: where it was made, for "never awaited"
  return c
end

function aio.async(fn)
  if not callable(fn) then
    error("aloop.async: a function expected, got " .. type(fn), 2)
  end
  return function(...) return aio.coro(fn, ...) end
end

function aio.iscoroutine(x) return getmetatable(x) == Coro end

function Coro:await()
  rawset(self, "awaited", true)
  return self.fn(unpack(self, 1, self.n))
end

-- A coroutine object that was never scheduled nor awaited did nothing: say so (asyncio's
-- "coroutine ... was never awaited"), with where it was made in debug mode.
function Coro:__gc()
  if rawget(self, "awaited") then return end
  local msg = ("coroutine %s was never awaited"):format(tostring(self))
  local tb = core._creation_traceback(self)
  if tb then msg = msg .. "\nCoroutine created at:\n" .. tb end
  core.log.warning(msg)
end

function Coro.__tostring(c)
  local info = type(c.fn) == "function" and debug.getinfo(c.fn, "S")
  return info and ("<coroutine object %s:%d>"):format(info.short_src, info.linedefined)
    or "<coroutine object>"
end

-- aio.await(aw): the results of a coroutine object (run inline), a future or a task.
function aio.await(aw, ...)
  if type(aw) == "function" then return aw(...) end
  if getmetatable(aw) == Coro then return aw:await() end
  if isfuture(aw) then return core.await_future(aw) end
  error("aloop.await: a coroutine object, Future, Task or function expected, got "
    .. (type(aw) == "userdata" and tostring(aw) or type(aw)), 2)
end

---------------------------------------------------------------------------------------------
-- Tasks from awaitables.

-- loop:create_task(fn, ...) / loop:create_task(coro, {name=}) is C (src/core/task.c); it knows
-- coroutine objects by their metatable.
core._set_coro_mt(Coro)

local function default_loop() return running_loop() or aio.get_event_loop() end

function aio.create_task(aw, ...) return default_loop():create_task(aw, ...) end

-- A future stays itself; anything else becomes a task (on opts.loop when given).
function aio.ensure_future(aw, ...)
  if isfuture(aw) then return aw end
  local opts = ...
  local loop = type(aw) ~= "function" and type(opts) == "table" and opts.loop or default_loop()
  return loop:create_task(aw, ...)
end
local ensure_future = aio.ensure_future

function Loop:run_until_complete(aw, ...)
  if self:is_closed() then error("aloop: Event loop is closed", 2) end
  if self:is_running() then error("aloop: This event loop is already running", 2) end
  local fut = isfuture(aw) and aw or self:create_task(aw, ...)
  if fut:get_loop() ~= self then
    error("aloop: the future belongs to a different loop", 2)
  end
  local loop = self
  local function stop() loop:stop() end
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

---------------------------------------------------------------------------------------------
-- aio.run

local function cancel_all_tasks(loop)
  local tasks, any = aio.all_tasks(loop), false
  for t in pairs(tasks) do
    t:cancel()
    any = true
  end
  if not any then return end
  local list = {}
  for t in pairs(tasks) do list[#list + 1] = t end
  loop:run_until_complete(aio.gather(list, { return_exceptions = true }))
  for _, t in ipairs(list) do
    if not t:cancelled() and t:exception() ~= nil then
      loop:call_exception_handler {
        message = "unhandled exception during aio.run() shutdown",
        exception = t:exception(), task = t,
      }
    end
  end
end

-- aio.run(main, ...): a new loop runs main(...) to completion, then the loop is closed.
function aio.run(main, ...)
  if running_loop() then
    error("aloop.run: cannot be called from a running event loop", 2)
  end
  local loop = aio.new_event_loop()
  aio.set_event_loop(loop)
  local res = pack(pcall(loop.run_until_complete, loop, main, ...))
  local ok2, err2 = pcall(cancel_all_tasks, loop)
  aio.set_event_loop(nil)
  loop:close()
  if not res[1] then error(res[2], 0) end
  if not ok2 then error(err2, 0) end
  return unpack(res, 2, res.n)
end

---------------------------------------------------------------------------------------------
-- Task-level helpers shared with tasks.lua.

aio._default_loop = default_loop

-- Inside a task, these combinators suspend and return results; elsewhere they return the
-- future (so `loop:run_until_complete(aio.gather(...))` works at top level).
require("aloop.tasks")(aio, core)
require("aloop.timeouts")(aio, core)
require("aloop.taskgroup")(aio, core)
require("aloop.executor")(aio, core)
require("aloop.thread")(aio, core)
require("aloop.locks")(aio, core)
require("aloop.queues")(aio, core)
require("aloop.net")(aio, core)
require("aloop.streams")(aio, core)
require("aloop.subprocess")(aio, core)

-- Modules loaded on first use: aio.redis is require "aloop.redis".
local lazy = { redis = "aloop.redis" }
setmetatable(aio, {
  __index = function(t, k)
    local name = lazy[k]
    if not name then return nil end
    local m = require(name)
    rawset(t, k, m)
    return m
  end,
})

return aio
