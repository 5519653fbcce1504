-- aio.executor (lua/aloop/threads/executor.lua, src/threads/threadpool.c, src/threads/cfuture.c):
-- thread and process pools, their concurrent futures (blocking outside tasks, suspending inside
-- them), map and as_completed, shutdown and closing, run_in_executor and to_thread. Jobs that must
-- wait block on a named pipe (a FIFO) until the spec writes to it: no sleeps, no timing asserts.
local aio = require "aloop"
local H = require "spec.helper"

local function fifo()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkfifo " .. H.q(p)))
  return p
end

-- A job: waits for a line on the FIFO, returns it (and its tag).
local function wait_line(path, tag)
  local f = assert(io.open(path, "r"))
  local s = f:read("l")
  f:close()
  return s, tag
end

-- A job: says it started on one FIFO, then waits for a line on another.
local function started_then_wait(started, path)
  local f = assert(io.open(started, "w"))
  f:write("started\n")
  f:close()
  f = assert(io.open(path, "r"))
  local s = f:read("l")
  f:close()
  return s
end

local function release(path, line)
  local f = assert(io.open(path, "w"))
  f:write((line or "go") .. "\n")
  f:close()
end

local function square(x) return x * x end

describe("ThreadPool", function()
  local pool
  before_each(function() pool = aio.executor.ThreadPool(2) end)
  after_each(function() pool:shutdown() end)

  it("submit returns a concurrent future whose result is the function's results", function()
    local f = pool:submit(function(a, b) return a + b, "two", { t = true } end, 1, 2)
    local x, y, z = f:result()
    assert.same({ 3, "two", { t = true } }, { x, y, z })
    assert.is_true(f:done())
    assert.is_false(f:cancelled())
  end)

  it("result(timeout) outside a task blocks and raises TimeoutError when the work is not done", function()
    local p = fifo()
    local f = pool:submit(wait_line, p)
    local ok, err = pcall(f.result, f, 0.01)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.TimeoutError))
    release(p, "late")
    assert.equal("late", f:result())
    os.remove(p)
  end)

  it("an error in the worker comes back with the worker's traceback", function()
    local f = pool:submit(function() local t = nil; return t.field end)
    local ok, err = pcall(f.result, f)
    assert.is_false(ok)
    assert.matches("attempt to index a nil value", err)
    assert.matches("%[in another thread or process%] stack traceback:", err)
  end)

  it("an aloop error object comes back as the same class with its message", function()
    local f = pool:submit(function() error(require("aloop").TimeoutError("too slow")) end)
    local err = f:exception()
    assert.is_true(aio.iserror(err, aio.TimeoutError))
    assert.equal("too slow", err.message)
    assert.matches("in another thread or process", err.traceback)
  end)

  it("workers can require aloop and see the same package.path", function()
    local path, version = pool:submit(function()
      return package.path, require("aloop").version
    end):result()
    assert.equal(package.path, path)
    assert.equal(aio.version, version)
  end)

  it("cancel() stops a job that has not started; one that runs cannot be cancelled", function()
    local one = aio.executor.ThreadPool(1)
    local p = fifo()
    local running = one:submit(wait_line, p)
    local queued = one:submit(square, 3)
    assert.is_true(queued:cancel())
    assert.is_true(queued:cancelled())
    assert.error_matches(function() queued:result() end, "cancelled")
    release(p)
    running:result()
    assert.is_false(running:cancel())
    one:shutdown()
    os.remove(p)
  end)

  it("map yields (result, index) in the order of the list, false results included", function()
    local got, idx = {}, {}
    for r, i in pool:map(function(x) return x % 2 == 0 end, { 1, 2, 3, 4 }) do
      got[#got + 1], idx[#idx + 1] = r, i
    end
    assert.same({ false, true, false, true }, got)
    assert.same({ 1, 2, 3, 4 }, idx)
  end)

  it("map_list keeps nil results in their place (a for loop over map would stop at one)", function()
    local got = pool:map_list(function(x) if x ~= 2 then return x * 10 end end, { 1, 2, 3 })
    assert.equal(10, got[1])
    assert.is_nil(got[2])
    assert.equal(30, got[3])
  end)

  it("map takes several lists like Python's map(fn, a, b)", function()
    local got = pool:map_list(function(a) return a .. "!" end, { "a", "b" })
    assert.same({ "a!", "b!" }, got)
    local sums = {}
    for s, i in pool:map(function(a, b) return a + b end, { 1, 2, 3 }, { 10, 20 }) do sums[i] = s end
    assert.same({ 11, 22 }, sums)
  end)

  it("as_completed yields futures in the order they finish", function()
    local p = fifo()
    local slow = pool:submit(wait_line, p, "slow")
    local fast = pool:submit(square, 4)
    local order = {}
    for f in aio.executor.as_completed({ slow, fast }) do
      order[#order + 1] = f == fast and "fast" or "slow"
      if f == fast then release(p) end
    end
    assert.same({ "fast", "slow" }, order)
    os.remove(p)
  end)

  it("as_completed accepts a set keyed by futures and raises TimeoutError after its timeout", function()
    local p = fifo()
    local f = pool:submit(wait_line, p)
    local it = aio.executor.as_completed({ [f] = "job" }, 0.01)
    local ok, err = pcall(it)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.TimeoutError))
    release(p)
    f:result()
    os.remove(p)
  end)

  it("shutdown waits for submitted work, then submit raises InvalidStateError", function()
    local f = pool:submit(square, 5)
    pool:shutdown()
    assert.is_true(f:done())
    local ok, err = pcall(pool.submit, pool, square, 1)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.InvalidStateError))
    assert.matches("after the pool was shut down", err.message)
  end)

  it("shutdown(true, true) cancels the work still queued", function()
    local one = aio.executor.ThreadPool(1)
    local p, started = fifo(), fifo()
    local running = one:submit(started_then_wait, started, p)
    local queued = one:submit(square, 2)
    assert.equal("started", wait_line(started))
    one:shutdown(false, true)
    assert.is_true(queued:cancelled())
    release(p)
    assert.equal("go", running:result())
    one:shutdown()
    os.remove(p)
    os.remove(started)
  end)

  it("is to-be-closed: leaving the scope waits for the submitted work", function()
    local futs = {}
    do
      local p <close> = aio.executor.ThreadPool(2)
      for i = 1, 4 do futs[i] = p:submit(square, i) end
    end
    for i = 1, 4 do
      assert.is_true(futs[i]:done())
      assert.equal(i * i, futs[i]:result())
    end
  end)

  it("result() inside a task suspends only that task", function()
    local p = fifo()
    local got = H.run(function()
      local f = pool:submit(wait_line, p)
      aio.create_task(function() release(p, "from another task") end)
      return f:result()
    end)
    assert.equal("from another task", got)
    os.remove(p)
  end)

  it("a concurrent future is awaitable with aio.await and :await()", function()
    local a, b = H.run(function()
      return aio.await(pool:submit(square, 6)), pool:submit(square, 7):await()
    end)
    assert.equal(36, a)
    assert.equal(49, b)
  end)

  it("as_completed inside a task suspends it", function()
    local p = fifo()
    local order = H.run(function()
      local slow = pool:submit(wait_line, p, "slow")
      local fast = pool:submit(square, 4)
      local order = {}
      for f in aio.executor.as_completed({ slow, fast }) do
        order[#order + 1] = select(2, f:result()) or "fast"
        if #order == 1 then aio.create_task(release, p) end
      end
      return order
    end)
    assert.same({ "fast", "slow" }, order)
    os.remove(p)
  end)

  it("closing in a task waits by suspending", function()
    local done = H.run(function()
      local f
      do
        local p <close> = aio.executor.ThreadPool(1)
        f = p:submit(square, 3)
      end
      return f:done()
    end)
    assert.is_true(done)
  end)

  it("starts no worker before the first submit, then only as many as the work needs", function()
    local p = aio.executor.ThreadPool(4)
    assert.matches("started=0", tostring(p))
    p:submit(square, 1):result()
    assert.matches("started=1", tostring(p))
    p:shutdown()
  end)

  it("aio.wrap_future makes a loop future for aio.gather and aio.wait", function()
    local got = H.run(function()
      local a, b = pool:submit(square, 2), pool:submit(square, 3)
      return aio.gather(aio.wrap_future(a), aio.wrap_future(b))
    end)
    assert.same({ 4, 9 }, { got[1], got[2] })
  end)

  it("runs 2,000 small jobs on 4 threads and every result arrives once", function()
    local p = aio.executor.ThreadPool(4)
    local futs = {}
    for i = 1, 2000 do futs[i] = p:submit(function(x) return x * 2 end, i) end
    local sum, n = 0, 0
    for f in aio.executor.as_completed(futs) do
      sum = sum + f:result()
      n = n + 1
    end
    p:shutdown()
    assert.equal(2000, n)
    assert.equal(2000 * 2001, sum)
  end)

  it("refuses a size that is not a positive integer", function()
    assert.error_matches(function() aio.executor.ThreadPool(0) end, "positive integer")
  end)
end)

describe("run_in_executor and to_thread", function()
  it("loop:run_in_executor(nil, fn, ...) returns a future of the loop with fn's results", function()
    local a, b = H.run(function(loop)
      local fut = aio.get_running_loop():run_in_executor(nil, function(x) return x, x + 1 end, 1)
      assert.is_true(aio.isfuture(fut))
      return fut:await()
    end)
    assert.equal(1, a)
    assert.equal(2, b)
  end)

  it("the loop keeps running callbacks while the blocking call runs", function()
    local p = fifo()
    local got = H.run(function()
      local loop = aio.get_running_loop()
      local fut = loop:run_in_executor(nil, wait_line, p)
      loop:call_soon(release, p, "released by a callback")
      return fut:await()
    end)
    assert.equal("released by a callback", got)
    os.remove(p)
  end)

  it("aio.to_thread outside a task returns the future", function()
    local loop = aio.new_event_loop()
    local fut = aio.to_thread(function() return "later" end)
    assert.is_true(aio.isfuture(fut))
    aio.set_event_loop(loop)
    local fut2 = aio.to_thread(function() return "on this loop" end)
    assert.equal("on this loop", loop:run_until_complete(fut2))
    aio.set_event_loop(nil)
    loop:close()
    fut:get_loop():run_until_complete(fut)
    fut:get_loop():close()
  end)

  it("raises the worker's error in the awaiting task", function()
    local ok, err = pcall(H.run, function()
      return aio.get_running_loop():run_in_executor(nil, function() error("blocking call failed") end):await()
    end)
    assert.is_false(ok)
    assert.matches("blocking call failed", err)
  end)

  it("runs in a given pool", function()
    local pool = aio.executor.ThreadPool(1)
    local r = H.run(function()
      return aio.get_running_loop():run_in_executor(pool, square, 9):await()
    end)
    assert.equal(81, r)
    pool:shutdown()
  end)

  it("aio.to_thread in a task returns the results", function()
    assert.equal("ab", H.run(function() return aio.to_thread(function(a, b) return a .. b end, "a", "b") end))
  end)

  it("cancelling the future cancels work that has not started", function()
    local pool = aio.executor.ThreadPool(1)
    local p = fifo()
    local first = pool:submit(wait_line, p)
    local cancelled = H.run(function()
      local fut = aio.get_running_loop():run_in_executor(pool, square, 2)
      fut:cancel()
      aio.sleep(0)
      return fut:cancelled()
    end)
    assert.is_true(cancelled)
    release(p)
    first:result()
    pool:shutdown()
    os.remove(p)
  end)

  it("refuses what is not an executor", function()
    local ok, err = pcall(H.run, function() aio.get_running_loop():run_in_executor({}, square, 1) end)
    assert.is_false(ok)
    assert.matches("an executor", err)
  end)

  it("the default pool's size can be set", function()
    aio.executor.set_default_size(3)
    assert.equal(3, aio.executor.default().max_workers)
    H.run(function() aio.get_running_loop():shutdown_default_executor() end)
  end)
end)

describe("ProcessPool", function()
  local pool
  setup(function() pool = aio.executor.ProcessPool(2) end)
  teardown(function() pool:shutdown() end)

  local function pid()
    local f = io.open("/proc/self/stat")
    local s = f:read("l")
    f:close()
    return s:match("^(%d+)")
  end

  it("runs the function in another process", function()
    local child = pool:submit(function()
      local f = io.open("/proc/self/stat")
      local s = f:read("l")
      f:close()
      return s:match("^(%d+)")
    end):result()
    assert.are_not.equal(pid(), child)
  end)

  it("map yields in order and as_completed yields every future", function()
    local got = {}
    for r, i in pool:map(function(n) return n % 2 == 1 end, { 25, 61, 50 }) do got[i] = r end
    assert.same({ true, true, false }, got)
    local futs, seen = {}, 0
    for i = 1, 3 do futs[i] = pool:submit(square, i) end
    for f in pool:as_completed(futs) do seen = seen + f:result() end
    assert.equal(14, seen)
  end)

  it("the child inherits no fd of the parent but stdin, stdout and stderr", function()
    local marker_path = os.tmpname()
    local marker = io.open(marker_path, "w") -- an inheritable fd, opened before the fork
    local loop = aio.new_event_loop()        -- and a loop's epoll fd
    local fresh = aio.executor.ProcessPool(1)
    local links = fresh:submit(function()
      local f = io.open("/proc/self/stat")
      local pid = f:read("l"):match("^%d+")
      f:close()
      local p = io.popen("ls -l /proc/" .. pid .. "/fd")
      local out = p:read("a")
      p:close()
      return out
    end):result()
    fresh:shutdown()
    loop:close()
    marker:close()
    os.remove(marker_path)
    assert.is_nil(links:find(marker_path, 1, true))
    assert.is_nil(links:find("eventpoll", 1, true))
    assert.matches(" 3 %-> socket:", links)
  end)

  it("a worker process that dies fails its job with a clear error; the next job gets a new one", function()
    local f = pool:submit(function() os.exit(3) end)
    assert.error_matches(function() f:result() end, "the worker process %d+ exited %(status 3%)")
    assert.equal(4, pool:submit(square, 2):result())
  end)

  it("errors come back like a thread pool's", function()
    local f = pool:submit(function() error("in the child") end)
    assert.error_matches(function() f:result() end, "in the child")
  end)
end)
