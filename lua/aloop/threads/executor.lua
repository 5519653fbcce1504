-- aio.executor: pools of worker threads or processes (src/threads/threadpool.c) and the Lua side of
-- their concurrent futures (src/threads/cfuture.c): result(timeout) blocks this OS thread outside a task
-- and suspends only the task inside one; map and as_completed iterators; shutdown and closing;
-- the default executor behind loop:run_in_executor(nil, fn, ...) and aio.to_thread(fn, ...).
local core = require "aloop.core"
local loop_glue = require "aloop.core.loop"
local tasks = require "aloop.core.tasks"
local CF = core.ConcurrentFuture
local cf_mt = core._ConcurrentFuture_mt
local default_loop = loop_glue.default_loop
local unpack, pack, select, type = table.unpack, table.pack, select, type

local executor = {} -- aio.executor

local function in_task() return core.current_task() ~= nil end

local function timeout_error(what)
  return core.TimeoutError(what .. ": timed out")
end

-- Waits until cf is done: suspends the current task, or blocks this thread outside tasks.
-- Returns false when the timeout passed first. A task cancelled meanwhile cancels cf.
local function wait_done(cf, timeout)
  if cf:done() then return true end
  if timeout ~= nil and type(timeout) ~= "number" then
    error("aloop.executor: timeout must be a number or nil", 3)
  end
  if not in_task() then return cf:_wait(timeout) end
  local signal = cf:_wrap(core.get_running_loop(), true)
  local ok, err = pcall(tasks.wait, { signal }, { timeout = timeout })
  if not ok then
    signal:cancel()
    if core.iserror(err, core.CancelledError) then cf:cancel() end
    error(err, 0)
  end
  if not signal:done() then signal:cancel() end
  return cf:done()
end

-- fut:result(timeout): the results, or raises the worker's error (TimeoutError after timeout).
function CF:result(timeout)
  if not wait_done(self, timeout) then error(timeout_error("result"), 2) end
  return self:_result()
end
CF.get = CF.result -- multiprocessing's AsyncResult.get

function CF:exception(timeout)
  if not wait_done(self, timeout) then error(timeout_error("exception"), 2) end
  return self:_exception()
end

-- fut:wait(timeout) -> true when done (multiprocessing's AsyncResult.wait + ready()).
function CF:wait(timeout) return wait_done(self, timeout) end
CF.ready = CF.done

function CF:await() return self:result() end

-- fut:add_done_callback(fn): fn(fut) on the current loop's thread once it is done.
function CF:add_done_callback(fn)
  local loop = default_loop()
  local cf = self
  cf:_wrap(loop, true):add_done_callback(function() fn(cf) end)
end

function executor.isfuture(x) return getmetatable(x) == cf_mt end

-- aio.wrap_future(cf [, loop]) -> a future of the loop (default: the running or current one)
-- that follows the concurrent future, for aio.wait, aio.gather and friends. Cancelling the
-- wrapper cancels cf (if its work has not started, or it runs on a remote loop).
local function wrap_future(cf, loop)
  if getmetatable(cf) ~= cf_mt then
    if core.isfuture(cf) then return cf end
    error("aloop.wrap_future: a concurrent future expected, got " .. tostring(cf), 2)
  end
  local fut = cf:_wrap(loop or default_loop())
  fut:add_done_callback(function(f) if f:cancelled() then cf:cancel() end end)
  return fut
end

-- The futures of a list, or of a set keyed by them; anything else is an error.
local function list_of(futs, what)
  if type(futs) ~= "table" then error(what .. ": a list or set of futures expected", 3) end
  local list = {}
  if futs[1] ~= nil then
    for i, f in ipairs(futs) do list[i] = f end
  else
    for f in pairs(futs) do list[#list + 1] = f end
  end
  for _, f in ipairs(list) do
    if getmetatable(f) ~= cf_mt then
      error(what .. ": a concurrent future expected, got " .. tostring(f), 3)
    end
  end
  return list
end

-- executor.as_completed(futs, timeout): for fut in as_completed(futs) do ... end, in the
-- order they finish (a list, or a set keyed by the futures). Inside a task it suspends the
-- task; elsewhere it blocks this thread. TimeoutError after `timeout` seconds.
function executor.as_completed(futs, timeout)
  local list = list_of(futs, "aloop.executor.as_completed")
  if timeout ~= nil and type(timeout) ~= "number" then
    error("aloop.executor.as_completed: timeout must be a number or nil", 2)
  end
  if in_task() then
    local loop, signals, of = core.get_running_loop(), {}, {}
    for i, f in ipairs(list) do
      signals[i] = f:_wrap(loop, true) -- completes with no values when f is done
      of[signals[i]] = f
    end
    local it = tasks.as_completed(signals, { timeout = timeout })
    return function()
      local s = it()
      return s and of[s]
    end
  end
  local ws, of, left = core._cf_waitset(list), {}, #list
  for _, f in ipairs(list) do of[f:_id()] = f end
  local deadline = timeout and core._monotonic() + timeout
  return function()
    if left == 0 then return nil end
    local id = ws:next(deadline and math.max(0, deadline - core._monotonic()))
    if id == nil then error(timeout_error("as_completed"), 2) end
    left = left - 1
    return of[id]
  end
end

---------------------------------------------------------------------------------------------
-- Pools

local Pool = { __name = "aloop.executor.Pool" }
Pool.__index = Pool

local function new_pool(n, procs, what)
  if n ~= nil and (math.type(n) ~= "integer" or n < 1) then
    error(what .. ": the number of workers must be a positive integer", 3)
  end
  n = n or (procs and core._ncpu() or math.min(32, core._ncpu() + 4))
  return setmetatable({ _c = core._pool_new(n, procs), max_workers = n, kind = what }, Pool)
end

function executor.ThreadPool(n) return new_pool(n, false, "aloop.executor.ThreadPool") end
function executor.ProcessPool(n) return new_pool(n, true, "aloop.executor.ProcessPool") end

-- pool:submit(fn, ...) -> a concurrent future of fn(...) run by a worker.
function Pool:submit(fn, ...) return self._c:submit(fn, ...) end

-- pool:apply_async(fn, args) / pool:apply(fn, args): multiprocessing's names (args a list).
function Pool:apply_async(fn, args) return self._c:submit(fn, unpack(args or {})) end
function Pool:apply(fn, args) return self._c:submit(fn, unpack(args or {})):result() end

-- Submits fn(list1[i], list2[i], ...) for every i (the shortest list decides); the futures.
local function submit_all(pool, fn, ...)
  local lists = pack(...)
  if lists.n == 0 then error("aloop.executor: map needs at least one list", 3) end
  local n = math.huge
  for i = 1, lists.n do
    if type(lists[i]) ~= "table" then error("aloop.executor: map: argument " .. (i + 1) .. " must be a list", 3) end
    n = math.min(n, #lists[i])
  end
  local futs = {}
  for i = 1, n do
    local args = {}
    for k = 1, lists.n do args[k] = lists[k][i] end
    futs[i] = pool._c:submit(fn, unpack(args, 1, lists.n))
  end
  return futs
end

-- pool:map(fn, list1, ...): an iterator of the results in the order of the list (API.md §9),
-- the index second: for result, i in pool:map(fn, list) do ... end. As with any Lua `for`, a
-- nil result ends the loop: use pool:map_list for functions that may return nil.
function Pool:map(fn, ...)
  local futs = submit_all(self, fn, ...)
  local i = 0
  return function()
    i = i + 1
    local f = futs[i]
    if not f then return nil end
    futs[i] = nil
    return (f:result()), i
  end
end

-- pool:as_completed(futs [, timeout]): the same as aio.executor.as_completed (API.md §9).
function Pool:as_completed(futs, timeout) return executor.as_completed(futs, timeout) end

-- pool:map_list(fn, list1, ...): the results of map as a list (multiprocessing's Pool.map).
function Pool:map_list(fn, ...)
  local out = {}
  for i, f in ipairs(submit_all(self, fn, ...)) do out[i] = (f:result()) end
  return out
end

-- pool:shutdown(wait = true, cancel_futures = false): no new work; with wait, returns when the
-- work already submitted has finished (suspending a task, blocking elsewhere).
function Pool:shutdown(wait, cancel_futures)
  self._c:_shutdown(cancel_futures)
  if wait ~= false then
    if in_task() then self._c:_idle():result() end
    self._c:_join()
  end
end

-- local pool <close> = aio.executor.ThreadPool(4): closing waits for the submitted work.
function Pool:__close() self:shutdown(true) end

function Pool:__tostring()
  local max, started, busy, down = self._c:_info()
  return ("<%s max_workers=%d started=%d busy=%d%s>"):format(self.kind:match("[^.]+$"), max,
    started, busy, down and " shut down" or "")
end

function executor.ispool(x) return getmetatable(x) == Pool end

---------------------------------------------------------------------------------------------
-- The default executor (one per Lua state, started at its first use)

local default_pool, default_size

-- Size of the default pool: env ALOOP_THREADS, or min(32, processors + 4) as in Python.
function executor.set_default_size(n)
  if math.type(n) ~= "integer" or n < 1 then
    error("aloop.executor.set_default_size: a positive integer expected", 2)
  end
  default_size = n
  if default_pool then
    default_pool:shutdown(false)
    default_pool = nil
  end
end

function executor.default()
  if not default_pool then
    local n = default_size or math.tointeger(tonumber(os.getenv("ALOOP_THREADS") or ""))
    default_pool = new_pool(n and n >= 1 and n or nil, false, "aloop.executor.ThreadPool")
  end
  return default_pool
end

local Loop = core.Loop

-- loop:run_in_executor(executor_or_nil, fn, ...) -> a future of this loop, completed on its
-- thread; cancelling it cancels the work if it has not started.
function Loop:run_in_executor(ex, fn, ...)
  if self:is_closed() then error("aloop: Event loop is closed", 2) end
  if ex == nil then ex = executor.default() end
  if getmetatable(ex) ~= Pool then
    error("aloop.run_in_executor: an executor (aio.executor.ThreadPool/ProcessPool) or nil expected", 2)
  end
  return wrap_future(ex._c:submit(fn, ...), self)
end

function Loop:shutdown_default_executor()
  local pool = default_pool
  default_pool = nil
  if pool then pool:shutdown(true) end
end

-- aio.to_thread(fn, ...): in a task, runs fn(...) in the default pool and returns its results
-- (suspending only this task); elsewhere returns the future.
local function to_thread(fn, ...)
  local loop = default_loop()
  local fut = loop:run_in_executor(nil, fn, ...)
  if in_task() then return fut:await() end
  return fut
end

return { executor = executor, wrap_future = wrap_future, to_thread = to_thread }
