-- aio.thread: loops running in other OS threads (src/threads/remote.c). start_loop() returns a handle
-- on a loop that runs run_forever in a new thread with its own Lua state; work reaches it as
-- marshalled functions (call_soon_threadsafe, aio.run_coroutine_threadsafe). Also serve, which
-- that thread runs (remote.c calls it, start_coro and cancel_coro), and what crosses between
-- states (encode/decode, as bytes).
local core = require "aloop.core"
local coro = require "aloop.core.coro"
local tasks = require "aloop.core.tasks"
require "aloop.threads.executor" -- the methods of the concurrent futures this module returns
local unpack = table.unpack
local thread = {} -- aio.thread

-- thread.encode(...) -> bytes; thread.decode(bytes) -> ...: exactly what crosses to another
-- thread (nil, booleans, numbers, strings, tables of these); errors name what cannot.
thread.encode = core._encode
thread.decode = core._decode

local Remote = core.RemoteLoop
local remote_mt = core._RemoteLoop_mt

-- remote:join(): waits until the loop's thread has ended (after remote:stop()): suspends
-- the current task, or blocks this thread outside tasks.
function Remote:join()
  if core.current_task() then self:_exited():result() end
  self:_join()
end

-- aio.thread.start_loop() -> a loop running in a new OS thread: remote:call_soon_threadsafe,
-- aio.run_coroutine_threadsafe(fn_or_coro, remote), remote:stop(), remote:join().
function thread.start_loop() return core._start_loop() end

-- aio.run_coroutine_threadsafe(fn_or_coro, remote) -> a concurrent future of the task it
-- becomes on the remote loop (fn with no arguments, or aio.coro(fn, ...)).
local function run_coroutine_threadsafe(aw, remote)
  if getmetatable(remote) ~= remote_mt then
    error("aloop.run_coroutine_threadsafe: a loop from aio.thread.start_loop() expected, got "
      .. tostring(remote), 2)
  end
  if coro.iscoroutine(aw) then
    rawset(aw, "awaited", true)
    return remote:_run_coro(aw.fn, unpack(aw, 1, aw.n))
  end
  return remote:_run_coro(aw)
end

-- In the new thread: run the loop until remote:stop(); then run what was posted before the
-- stop, cancel the tasks that are left (their concurrent futures are cancelled) and close.
local this_remote, stopping -- in the loop's own thread: its RemoteLoop; stop() has begun

local function serve(r)
  this_remote = r
  local loop = core.new_event_loop()
  core.set_event_loop(loop)
  core._remote_state(r, "running", loop)
  local ok, err = pcall(loop.run_forever, loop)
  core._remote_state(r, "stopping")
  stopping = true
  pcall(loop.run_until_complete, loop, core.sleep, 0)
  local left = {}
  for t in pairs(core.all_tasks(loop)) do
    t:cancel()
    left[#left + 1] = t
  end
  if #left > 0 then pcall(loop.run_until_complete, loop, tasks.gather(left, { return_exceptions = true })) end
  core._remote_state(r, "done")
  core.set_event_loop(nil)
  loop:close()
  if not ok then error(err, 0) end
end

-- In the remote thread: fn(...) as a task whose outcome completes the concurrent future;
-- cancelling that future (from any thread) cancels the task (cancel_coro).
local running = {} -- concurrent future id -> its task
local function start_coro(cf, fn, ...)
  if not cf:_start() then return end
  local task = core.get_event_loop():create_task(fn, ...)
  local id = cf:_id()
  running[id] = task
  core._cf_cancel_via(cf, this_remote)
  task:add_done_callback(function(t)
    running[id] = nil
    if t:cancelled() then
      if not stopping then return cf:_set_cancelled() end
      return cf:_set_error(core.CancelledError(
        "aloop: the loop in the other thread stopped before the coroutine finished"))
    end
    local res = table.pack(pcall(t.result, t))
    if res[1] then cf:_set_result(unpack(res, 2, res.n)) else cf:_set_error(res[2]) end
  end)
end

local function cancel_coro(cf)
  local task = running[cf:_id()]
  if task then task:cancel() end
end

return {
  thread = thread, run_coroutine_threadsafe = run_coroutine_threadsafe,
  serve = serve, start_coro = start_coro, cancel_coro = cancel_coro, -- src/threads/remote.c
}
