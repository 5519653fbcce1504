-- Coroutine objects (aloop.core.coro): aio.coro(fn, ...) is a deferred call fn(...), the analog
-- of calling an `async def`; aio.async(fn) makes such calls; aio.await(aw) runs or awaits one.
-- The C task code knows them by their metatable (core._set_coro_mt).
local core = require "aloop.core"

local isfuture, await_future = core.isfuture, core.await_future
local unpack, select, type = table.unpack, select, type
local cf_mt = core._ConcurrentFuture_mt

local coro = {}

local Coro = { __name = "aloop.Coroutine" }
Coro.__index = Coro

local function callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end
coro.callable = callable

function coro.coro(fn, ...)
  if not callable(fn) then
    error("aloop.coro: a function expected, got " .. type(fn), 2)
  end
  local c = setmetatable({ fn = fn, n = select("#", ...), ... }, Coro)
  core._debug_note(c) -- debug mode: where it was made, for "never awaited"
  return c
end
local new_coro = coro.coro

function coro.async(fn)
  if not callable(fn) then
    error("aloop.async: a function expected, got " .. type(fn), 2)
  end
  return function(...) return new_coro(fn, ...) end
end

function coro.iscoroutine(x) return getmetatable(x) == Coro end

-- A coroutine object runs once: awaiting it again (or scheduling it again) is an error, as in
-- asyncio ("cannot reuse already awaited coroutine").
function Coro:await()
  if rawget(self, "awaited") then
    error(("aloop: cannot reuse already awaited coroutine %s"):format(tostring(self)), 3)
  end
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

-- aio.await(aw): the results of a coroutine object (run inline), a future or a task, or a
-- concurrent future (its methods come with aloop.threads.executor, which made it).
function coro.await(aw, ...)
  if type(aw) == "function" then return aw(...) end
  if getmetatable(aw) == Coro then return aw:await() end
  if isfuture(aw) then return await_future(aw) end
  if getmetatable(aw) == cf_mt then return aw:result() end
  error("aloop.await: a coroutine object, Future, Task or function expected, got "
    .. (type(aw) == "userdata" and tostring(aw) or type(aw)), 2)
end

-- loop:create_task(fn, ...) / loop:create_task(coro, {name=}) is C (src/core/task.c); it knows
-- coroutine objects by their metatable.
core._set_coro_mt(Coro)

return coro
