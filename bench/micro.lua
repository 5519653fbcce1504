-- Loop-core micro-benchmarks for aloop: the peers' micro protocol
-- (/work/shared/peers/README.md "Micro-benchmarks"; same workloads as peers/micro/py_micro.py).
--
-- usage: build/aloop bench/micro.lua BENCH N
--   callsoon_batch  N x loop:call_soon(noop), then loop:call_soon(loop.stop, loop) and
--                   run_forever: all N run in one iteration
--   callsoon_chain  each callback call_soon()s the next, N in total (one loop iteration per
--                   callback: the per-iteration cost of the loop)
--   tasks           inside a running task, loop:create_task() N functions that each do
--                   aio.sleep(0) once and finish. Waited with a counter + one future: each task
--                   decrements the counter when it finishes, the last one sets the future, the
--                   main task awaits it (cheapest faithful analogue of create_task + gather;
--                   cqueues/luv use the same kind of counter, asyncio/Node use gather/Promise.all)
--   tasks_gather    the same, but waited with aio.gather({tasks}) (the literal asyncio shape:
--                   one done-callback per task plus a results table; reported as variant
--                   "aloop-gather" in the `tasks` column)
--   timers          N loop:call_later(d, fired), d uniform in [0, 0.1] s (math.random, seed 42);
--                   wall time until the last one fired + process CPU time
--   mem             N tasks each aio.sleep(1), waited like `tasks`; run under /usr/bin/time -v,
--                   N = 0 gives the interpreter + loop baseline
--   queue           a producer task puts N integers into aio.Queue(100) while a consumer task
--                   gets them (peer: bench/peers/py_sync.py queue, asyncio.Queue(maxsize=100))
--   lock            100 tasks share one aio.Lock; each takes it N/100 times and yields once
--                   (aio.sleep(0)) while holding it, so every acquisition waits in line and is
--                   handed over: N hand-offs (peer: bench/peers/py_sync.py lock)
--
-- Prints one line: RESULT bench=.. n=.. secs=.. cpu=..
-- secs: wall time (monotonic loop:time()) around the benchmark only, as py_micro.py does;
-- cpu: os.clock() (process CPU time, user+sys) from just before the benchmark to the report.
local aio = require "aloop"

local bench, n = arg[1], tonumber(arg[2])
if not bench or not n then
  io.stderr:write("usage: aloop bench/micro.lua BENCH N\n")
  os.exit(2)
end

local loop = aio.new_event_loop()
aio.set_event_loop(loop)
local clock = os.clock
local function now() return loop:time() end

local B = {}

function B.callsoon_batch()
  local function noop() end
  local cs = loop.call_soon
  local t0 = now()
  for _ = 1, n do cs(loop, noop) end
  cs(loop, loop.stop, loop)
  loop:run_forever()
  return now() - t0
end

function B.callsoon_chain()
  local left = n
  local cs = loop.call_soon
  local step
  function step()
    left = left - 1
    if left > 0 then cs(loop, step) else loop:stop() end
  end
  local t0 = now()
  cs(loop, step)
  loop:run_forever()
  return now() - t0
end

-- N tasks each doing sleep(delay) once; waited with a counter and one future.
local function sleepers(delay)
  local sleep = aio.sleep
  local ct = loop.create_task
  local left = n
  local all_done = loop:create_future()
  local function body()
    sleep(delay)
    left = left - 1
    if left == 0 then all_done:set_result(true) end
  end
  local function main()
    local t0 = now()
    for _ = 1, n do ct(loop, body) end
    if n > 0 then all_done:await() end
    return now() - t0
  end
  return loop:run_until_complete(main)
end

function B.tasks() return sleepers(0) end
function B.mem() return sleepers(1) end

function B.tasks_gather()
  local sleep = aio.sleep
  local ct = loop.create_task
  local function body() sleep(0) end
  local function main()
    local t0 = now()
    local ts = {}
    for i = 1, n do ts[i] = ct(loop, body) end
    aio.gather(ts)
    return now() - t0
  end
  return loop:run_until_complete(main)
end

-- Both wait for their tasks with aio.gather, as the asyncio versions do.
function B.queue()
  local function main()
    local q = aio.Queue(100)
    local function producer()
      local put = q.put
      for i = 1, n do put(q, i) end
    end
    local function consumer()
      local get = q.get
      for _ = 1, n do get(q) end
    end
    local t0 = now()
    aio.gather(loop:create_task(producer), loop:create_task(consumer))
    return now() - t0
  end
  return loop:run_until_complete(main)
end

function B.lock()
  local ntasks = 100
  local function main()
    local lock = aio.Lock()
    local rounds = n // ntasks
    local sleep = aio.sleep
    local function worker()
      for _ = 1, rounds do
        local _ <close> = lock:acquire()
        sleep(0)
      end
    end
    local t0 = now()
    local ts = {}
    for i = 1, ntasks do ts[i] = loop:create_task(worker) end
    aio.gather(ts)
    return now() - t0
  end
  return loop:run_until_complete(main)
end

function B.timers()
  math.randomseed(42)
  local random = math.random
  local left = n
  local function fired()
    left = left - 1
    if left == 0 then loop:stop() end
  end
  local cl = loop.call_later
  local t0 = now()
  for _ = 1, n do cl(loop, random() * 0.1, fired) end
  if n > 0 then loop:run_forever() end
  return now() - t0
end

local fn = B[bench]
if not fn then
  io.stderr:write("unknown bench " .. tostring(bench) .. "\n")
  os.exit(2)
end
local c0 = clock()
local secs = fn()
local cpu = clock() - c0
print(string.format("RESULT bench=%s n=%d secs=%.6f cpu=%.6f", bench, n, secs, cpu))
loop:close()
