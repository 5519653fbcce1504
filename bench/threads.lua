-- bench/threads.lua: aloop's side of the threads benchmark (bench/threads runs it next to
-- bench/threads_py.py). Usage: build/aloop bench/threads.lua roundtrip N | cpu JOBS WORK
--   roundtrip N     N sequential `loop:run_in_executor(nil, noop):await()` in one task
--   cpu JOBS WORK   JOBS CPU-bound jobs (a loop of WORK iterations each): serial, then on a
--                   2-worker ThreadPool and a 2-worker ProcessPool
-- Prints `RESULT bench=<name> n=<N> secs=<wall seconds>` lines.
local aio = require "aloop"

local clock = require("aloop.core")._monotonic

local function noop() end

local function burn(n)
  local x = 0
  for i = 1, n do x = (x + i * i) % 1000003 end
  return x
end

local what = arg[1]
if what == "roundtrip" then
  local n = tonumber(arg[2]) or 20000
  aio.executor.set_default_size(1)
  aio.run(function()
    local loop = aio.get_running_loop()
    loop:run_in_executor(nil, noop):await() -- the worker thread and its Lua state are started
    local t0 = clock()
    for _ = 1, n do loop:run_in_executor(nil, noop):await() end
    print(("RESULT bench=aloop_run_in_executor_noop n=%d secs=%.6f"):format(n, clock() - t0))
    loop:shutdown_default_executor()
  end)
elseif what == "cpu" then
  local jobs, work = tonumber(arg[2]) or 8, tonumber(arg[3]) or 5000000
  local t0 = clock()
  for _ = 1, jobs do burn(work) end
  print(("RESULT bench=aloop_cpu_serial n=%d secs=%.6f"):format(jobs, clock() - t0))
  for _, kind in ipairs({ "ThreadPool", "ProcessPool" }) do
    local pool = aio.executor[kind](2)
    pool:map_list(burn, { 1, 1 })        -- start the workers first (threads, states, processes)
    t0 = clock()
    local list = {}
    for i = 1, jobs do list[i] = work end
    pool:map_list(burn, list)
    print(("RESULT bench=aloop_cpu_%s2 n=%d secs=%.6f"):format(kind, jobs, clock() - t0))
    pool:shutdown()
  end
end
