-- The soak load (run through bench/soak): mixed work for SOAK_SECONDS (default 1800) in one
-- aloop process — echo connections, subprocesses, thread-pool and executor jobs, cancellation
-- storms and timeouts — sampling RSS, open fds, OS threads and the Lua heap every
-- SOAK_INTERVAL seconds (default 10). Flat columns are the goal; the last lines compare the
-- first sample after warm-up with the last one. SOAK_SKIP lists parts left out, to find which
-- one grows (e.g. SOAK_SKIP=subprocesses,pools; parts: echo, subprocesses, pools, cancellations).
local aio = require "aloop"

local SECONDS = tonumber(os.getenv("SOAK_SECONDS")) or 1800
local INTERVAL = tonumber(os.getenv("SOAK_INTERVAL")) or 10
local ECHO_CLIENTS = 16
local SKIP = {}
for part in (os.getenv("SOAK_SKIP") or ""):gmatch("[%w_]+") do SKIP[part] = true end

local counts = { echo = 0, procs = 0, jobs = 0, cancelled = 0, timeouts = 0 }
local stop = false

local function proc_status(field)
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+)"))
end

local function fd_count()
  local n = 0
  local p = io.popen("ls /proc/" .. proc_status("Pid") .. "/fd")
  for _ in p:lines() do n = n + 1 end
  p:close()
  return n - 1 -- the listing's own pipe
end

local function sample(t0)
  collectgarbage()
  collectgarbage()
  return {
    t = aio.get_running_loop():time() - t0,
    rss = proc_status("VmRSS"),
    fds = fd_count(),
    threads = proc_status("Threads"),
    heap = collectgarbage("count"),
  }
end

local function report(s)
  print(("%6.0f s  rss %7d KB  fds %4d  threads %3d  heap %8.1f KB  | echo %8d  procs %6d  jobs %7d  cancelled %7d  timeouts %6d")
    :format(s.t, s.rss, s.fds, s.threads, s.heap, counts.echo, counts.procs, counts.jobs,
      counts.cancelled, counts.timeouts))
  io.stdout:flush()
end

-- Echo: clients connect, exchange lines, close; again and again.
local function echo_client(port)
  while not stop do
    local reader, writer = aio.open_connection("127.0.0.1", port)
    for i = 1, 20 do
      writer:write(("line %d\n"):format(i))
      assert(reader:readline() == ("line %d\n"):format(i))
      counts.echo = counts.echo + 1
    end
    writer:close()
    writer:wait_closed()
  end
end

local function echo_handler(reader, writer)
  while true do
    local line = reader:readline()
    if line == "" then break end
    writer:write(line)
  end
  writer:close()
end

-- Subprocesses: a cat that echoes its input back, and a shell that exits.
local function subprocesses()
  local PIPE = aio.subprocess.PIPE
  while not stop do
    local p = aio.create_subprocess_exec("cat", { stdin = PIPE, stdout = PIPE })
    local out = p:communicate(("x"):rep(10000))
    assert(#out == 10000)
    local q = aio.create_subprocess_shell("exit 3")
    assert(q:wait() == 3)
    counts.procs = counts.procs + 2
  end
end

-- Pools: a thread pool's futures awaited, and the loop's default executor.
local function pools()
  local pool = aio.executor.ThreadPool(2)
  local loop = aio.get_running_loop()
  while not stop do
    local futs = {}
    for i = 1, 8 do futs[i] = aio.wrap_future(pool:submit(function(n) return n * 2 end, i)) end
    local res = aio.gather(futs)
    assert(res[8] == 16)
    assert(aio.await(loop:run_in_executor(nil, function() return "ok" end)) == "ok")
    counts.jobs = counts.jobs + 9
  end
  pool:shutdown(true)
end

-- Cancellations: a storm of sleeping tasks, half cancelled, and wait_for timeouts.
local function cancellations()
  local loop = aio.get_running_loop()
  while not stop do
    local tasks = {}
    for i = 1, 200 do tasks[i] = loop:create_task(function() aio.sleep(i % 2 == 0 and 10 or 0.001) end) end
    aio.sleep(0)
    for i = 2, 200, 2 do tasks[i]:cancel() end
    local res = aio.gather(tasks, { return_exceptions = true })
    counts.cancelled = counts.cancelled + 100
    assert(res.n == 200)
    local ok = pcall(aio.wait_for, function() aio.sleep(1) end, 0.001)
    assert(not ok)
    counts.timeouts = counts.timeouts + 1
  end
end

aio.run(function()
  local loop = aio.get_running_loop()
  local t0 = loop:time()
  local server = aio.start_server(echo_handler, "127.0.0.1", 0)
  local port = server.sockets[1]:getsockname()[2]
  local workers = {}
  if not SKIP.echo then
    for _ = 1, ECHO_CLIENTS do workers[#workers + 1] = loop:create_task(echo_client, port) end
  end
  local parts = { subprocesses = subprocesses, pools = pools, cancellations = cancellations }
  for name, part in pairs(parts) do
    if not SKIP[name] then workers[#workers + 1] = loop:create_task(part) end
  end
  print(("soak: %d s, a sample every %d s (pid %d)"):format(SECONDS, INTERVAL, proc_status("Pid")))
  local samples = {}
  while loop:time() - t0 < SECONDS do
    aio.sleep(math.min(INTERVAL, SECONDS - (loop:time() - t0)))
    samples[#samples + 1] = sample(t0)
    report(samples[#samples])
  end
  stop = true
  aio.gather(workers)
  server:close()
  server:wait_closed()
  -- Growth from the first sample after warm-up (the second, when there is one) to the last.
  local first, last = samples[#samples >= 3 and 2 or 1], samples[#samples]
  print(("growth %.0f s -> %.0f s: rss %+d KB, fds %+d, threads %+d, heap %+.1f KB")
    :format(first.t, last.t, last.rss - first.rss, last.fds - first.fds,
      last.threads - first.threads, last.heap - first.heap))
end)
