-- Queues (API.md §8, lua/aloop/sync/queues.lua): Queue, LifoQueue, PriorityQueue; back-pressure,
-- FIFO fairness of waiters, task_done/join, shutdown, cancellation safety, errors on misuse.
local aio = require "aloop"
local H = require "spec.helper"

local async, settle, assert_cancelled = H.async, H.settle, H.assert_cancelled

local function assert_raises(cls, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  assert.is_true(aio.iserror(err, cls), tostring(err))
  return err
end

local function drain(q)
  local out = {}
  while not q:empty() do out[#out + 1] = q:get_nowait() end
  return out
end

describe("Queue", function()
  it("gives items back in FIFO order", async(function()
    local q = aio.Queue()
    for i = 1, 5 do q:put(i) end
    local out = {}
    for i = 1, 5 do out[i] = q:get() end
    assert.same({ 1, 2, 3, 4, 5 }, out)
  end))

  it("qsize, empty, full and maxsize", async(function()
    local q = aio.Queue(2)
    assert.equal(2, q.maxsize)
    assert.same({ 0, true, false }, { q:qsize(), q:empty(), q:full() })
    q:put_nowait("a")
    assert.same({ 1, false, false }, { q:qsize(), q:empty(), q:full() })
    q:put_nowait("b")
    assert.same({ 2, false, true }, { q:qsize(), q:empty(), q:full() })
    assert.equal(0, aio.Queue().maxsize)
  end))

  it("maxsize 0 (the default) or less means unbounded", async(function()
    for _, q in ipairs({ aio.Queue(), aio.Queue(-1) }) do
      for i = 1, 1000 do q:put_nowait(i) end
      assert.is_false(q:full())
      assert.equal(1000, q:qsize())
    end
  end))

  it("put_nowait on a full queue raises QueueFull and changes nothing", async(function()
    local q = aio.Queue(1)
    q:put_nowait(1)
    local err = assert_raises(aio.QueueFull, q.put_nowait, q, 2)
    assert.equal("QueueFull: the queue is full", tostring(err))
    assert.same({ 1 }, drain(q))
  end))

  it("get_nowait on an empty queue raises QueueEmpty", async(function()
    local q = aio.Queue()
    assert_raises(aio.QueueEmpty, q.get_nowait, q)
  end))

  it("get waits for a put", async(function()
    local q = aio.Queue()
    local t = aio.create_task(function() return q:get() end)
    settle()
    assert.is_false(t:done())
    q:put("x")
    assert.equal("x", t:await())
  end))

  it("put waits while the queue is full (back-pressure)", async(function()
    local q = aio.Queue(2)
    local log = {}
    local producer = aio.create_task(function()
      for i = 1, 4 do
        q:put(i)
        log[#log + 1] = "put " .. i
      end
    end)
    settle()
    assert.same({ "put 1", "put 2" }, log)
    assert.equal(1, q:get())
    settle()
    assert.same({ "put 1", "put 2", "put 3" }, log)
    assert.same({ 2, 3 }, { q:get(), q:get() })
    producer:await()
    assert.same({ 4 }, drain(q))
  end))

  it("blocked getters are served in FIFO order", async(function()
    local q = aio.Queue()
    local ts = {}
    for i = 1, 10 do ts[i] = aio.create_task(function() return i, q:get() end) end
    settle()
    for i = 1, 10 do q:put_nowait("item" .. i) end
    for i = 1, 10 do
      local who, item = ts[i]:await()
      assert.same({ i, "item" .. i }, { who, item })
    end
  end))

  it("blocked putters get in, in FIFO order", async(function()
    local q = aio.Queue(1)
    q:put_nowait(0)
    local ts = {}
    for i = 1, 5 do ts[i] = aio.create_task(function() q:put(i) end) end
    settle()
    local out = {}
    for i = 1, 6 do out[i] = q:get() end
    aio.gather(ts)
    assert.same({ 0, 1, 2, 3, 4, 5 }, out)
  end))

  it("a getter woken for an item someone else took keeps its place in line", async(function()
    local q = aio.Queue()
    local first = aio.create_task(function() return q:get() end)
    local second = aio.create_task(function() return q:get() end)
    settle()
    q:put_nowait("a") -- wakes `first`
    assert.equal("a", q:get_nowait()) -- but this caller takes the item before it runs
    settle() -- `first` finds the queue empty and waits again, still ahead of `second`
    q:put_nowait("b")
    q:put_nowait("c")
    assert.equal("b", first:await())
    assert.equal("c", second:await())
  end))

  it("many producers and consumers: every item arrives exactly once", async(function()
    local q = aio.Queue(3)
    local seen = {}
    local producers, consumers = {}, {}
    for p = 1, 5 do
      producers[p] = aio.create_task(function()
        for i = 1, 40 do
          q:put(p * 1000 + i)
          if i % 7 == 0 then aio.sleep(0) end
        end
      end)
    end
    for c = 1, 4 do
      consumers[c] = aio.create_task(function()
        for _ = 1, 50 do
          local item = q:get()
          assert.is_nil(seen[item])
          seen[item] = true
        end
      end)
    end
    aio.gather(producers)
    aio.gather(consumers)
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    assert.equal(200, n)
    assert.is_true(q:empty())
  end))

  it("a getter cancelled while waiting takes no item; the next getter gets it", async(function()
    local q = aio.Queue()
    local a = aio.create_task(function() return q:get() end)
    local b = aio.create_task(function() return q:get() end)
    settle()
    a:cancel()
    settle()
    q:put_nowait("x")
    assert.equal("x", b:await())
    assert_cancelled(a)
    assert.is_true(q:empty())
  end))

  it("a getter cancelled right after it was woken loses no item: the next getter gets it", async(function()
    local q = aio.Queue()
    local a = aio.create_task(function() return q:get() end)
    local b = aio.create_task(function() return q:get() end)
    settle()
    q:put_nowait("x") -- wakes a
    a:cancel() -- before a ran
    assert.equal("x", b:await())
    assert_cancelled(a)
  end))

  it("a getter cancelled right after it was woken, with nobody behind it, leaves the item queued", async(function()
    local q = aio.Queue()
    local a = aio.create_task(function() return q:get() end)
    settle()
    q:put_nowait("x")
    a:cancel()
    assert_cancelled(a)
    assert.same({ "x" }, drain(q))
  end))

  it("a putter cancelled while waiting puts nothing; the next putter gets in", async(function()
    local q = aio.Queue(1)
    q:put_nowait("first")
    local a = aio.create_task(function() q:put("a") end)
    local b = aio.create_task(function() q:put("b") end)
    settle()
    a:cancel()
    settle()
    assert.equal("first", q:get())
    b:await()
    assert_cancelled(a)
    assert.same({ "b" }, drain(q))
  end))

  it("a putter cancelled right after it was woken passes the free slot on", async(function()
    local q = aio.Queue(1)
    q:put_nowait("first")
    local a = aio.create_task(function() q:put("a") end)
    local b = aio.create_task(function() q:put("b") end)
    settle()
    assert.equal("first", q:get_nowait()) -- wakes a
    a:cancel()
    b:await()
    assert_cancelled(a)
    assert.same({ "b" }, drain(q))
  end))

  it("get outside a task is an error that names the fix", function()
    local q = aio.Queue()
    local ok, err = pcall(q.get, q)
    assert.is_false(ok)
    assert.matches("Queue.get: not inside a task", err)
  end)

  it("put_nowait and get_nowait work outside a running loop", function()
    local q = aio.Queue()
    q:put_nowait(1)
    assert.equal(1, q:get_nowait())
  end)

  it("using a queue from a second loop is an error", function()
    local q = aio.Queue()
    local loop1 = aio.new_event_loop()
    loop1:run_until_complete(function() q:put(1) end)
    loop1:close()
    local loop2 = aio.new_event_loop()
    local ok, err = pcall(loop2.run_until_complete, loop2, function() return q:get() end)
    loop2:close()
    assert.is_false(ok)
    assert.matches("Queue.get: <aloop.Queue maxsize=0 qsize=1 tasks=1> is bound to a different event loop", err)
  end)

  it("its methods called on something else than a queue raise a clear error", function()
    local q = aio.Queue()
    local ok, err = pcall(q.put_nowait, {}, 1)
    assert.is_false(ok)
    assert.matches("aloop.Queue.put_nowait: call it on a queue", err)
    ok, err = pcall(q.get, nil)
    assert.is_false(ok)
    assert.matches("aloop.Queue.get: call it on a queue", err)
  end)

  it("rejects a maxsize that is not a number", function()
    assert.matches("Queue: maxsize must be a number", select(2, pcall(aio.Queue, "10")))
  end)
end)

describe("LifoQueue", function()
  it("gives the last item put first", async(function()
    local q = aio.LifoQueue()
    for i = 1, 4 do q:put(i) end
    assert.same({ 4, 3, 2, 1 }, { q:get(), q:get(), q:get(), q:get() })
  end))

  it("has back-pressure and the nowait errors too", async(function()
    local q = aio.LifoQueue(1)
    q:put_nowait("a")
    assert_raises(aio.QueueFull, q.put_nowait, q, "b")
    local t = aio.create_task(function() q:put("b") end)
    settle()
    assert.equal("a", q:get())
    t:await()
    assert.equal("b", q:get_nowait())
    assert_raises(aio.QueueEmpty, q.get_nowait, q)
  end))
end)

describe("PriorityQueue", function()
  it("orders numbers, smallest first", async(function()
    local q = aio.PriorityQueue()
    for _, x in ipairs({ 5, 1, 4, 2, 3, -7, 2.5 }) do q:put(x) end
    assert.same({ -7, 1, 2, 2.5, 3, 4, 5 }, drain(q))
  end))

  it("orders strings", async(function()
    local q = aio.PriorityQueue()
    for _, x in ipairs({ "pear", "apple", "fig" }) do q:put(x) end
    assert.same({ "apple", "fig", "pear" }, drain(q))
  end))

  it("orders tables by their first element, ties in insertion order", async(function()
    local q = aio.PriorityQueue()
    q:put({ 2, "b1" })
    q:put({ 1, "a" })
    q:put({ 2, "b2" })
    q:put({ 3, "c" })
    q:put({ 2, "b3" })
    local out = {}
    for i, item in ipairs(drain(q)) do out[i] = item[2] end
    assert.same({ "a", "b1", "b2", "b3", "c" }, out)
  end))

  it("uses `less` when given, ties in insertion order", async(function()
    local q = aio.PriorityQueue(0, function(a, b) return a.prio > b.prio end)
    for i, p in ipairs({ 1, 3, 2, 3, 1 }) do q:put({ prio = p, id = i }) end
    local out = {}
    for i, item in ipairs(drain(q)) do out[i] = item.id end
    assert.same({ 2, 4, 3, 1, 5 }, out)
  end))

  it("agrees with table.sort on 2000 random keys", async(function()
    math.randomseed(7)
    local q, keys = aio.PriorityQueue(), {}
    for i = 1, 2000 do
      local k = math.random(1, 500)
      keys[#keys + 1] = k
      q:put_nowait(k)
      if i % 3 == 0 then -- interleave some gets
        table.sort(keys)
        assert.equal(table.remove(keys, 1), q:get_nowait())
      end
    end
    table.sort(keys)
    assert.same(keys, drain(q))
  end))

  it("refuses items it cannot order and stays as it was", async(function()
    local q = aio.PriorityQueue()
    q:put(1)
    assert.matches("cannot order a string key among number keys", select(2, pcall(q.put_nowait, q, "x")))
    assert.matches("PriorityQueue.put: cannot order", select(2, pcall(q.put_nowait, q, {})))
    assert.equal(1, q:qsize())
    assert.same({ 1 }, drain(q))
  end))

  it("a `less` that raises leaves the heap as it was", async(function()
    local boom = false
    local q = aio.PriorityQueue(0, function(a, b)
      if boom then error("less failed", 0) end
      return a < b
    end)
    for _, x in ipairs({ 3, 1, 2 }) do q:put(x) end
    boom = true
    assert.same({ false, "less failed" }, { pcall(q.put_nowait, q, 0) })
    assert.same({ false, "less failed" }, { pcall(q.get_nowait, q) })
    boom = false
    assert.same({ 1, 2, 3 }, drain(q))
  end))

  it("has back-pressure", async(function()
    local q = aio.PriorityQueue(1)
    q:put(5)
    local t = aio.create_task(function() q:put(1) end)
    settle()
    assert.is_false(t:done())
    assert.equal(5, q:get())
    t:await()
    assert.equal(1, q:get())
  end))
end)

describe("task_done and join", function()
  it("join waits until every item put has had its task_done", async(function()
    local q, log = aio.Queue(), {}
    for i = 1, 3 do q:put_nowait(i) end
    local worker = aio.create_task(function()
      for _ = 1, 3 do
        local item = q:get()
        aio.sleep(0)
        log[#log + 1] = "done " .. item
        q:task_done()
      end
    end)
    q:join()
    log[#log + 1] = "joined"
    assert.same({ "done 1", "done 2", "done 3", "joined" }, log)
    worker:await()
  end))

  it("join returns at once when nothing is unfinished", async(function()
    local q = aio.Queue()
    q:join()
    q:put_nowait(1)
    q:get_nowait()
    q:task_done()
    q:join()
  end))

  it("task_done called more times than items were put is an error", async(function()
    local q = aio.Queue()
    q:put_nowait(1)
    q:task_done()
    local ok, err = pcall(q.task_done, q)
    assert.is_false(ok)
    assert.matches("Queue.task_done: called more times than there were items put", err)
  end))

  it("every joiner wakes", async(function()
    local q = aio.Queue()
    q:put_nowait(1)
    local j1 = aio.create_task(function() q:join(); return 1 end)
    local j2 = aio.create_task(function() q:join(); return 2 end)
    settle()
    q:get_nowait()
    q:task_done()
    assert.same({ 1, 2 }, { j1:await(), j2:await() })
  end))
end)

describe("shutdown", function()
  it("put raises QueueShutDown after shutdown", async(function()
    local q = aio.Queue()
    q:shutdown()
    assert_raises(aio.QueueShutDown, q.put, q, 1)
    assert_raises(aio.QueueShutDown, q.put_nowait, q, 1)
  end))

  it("get drains what is left, then raises QueueShutDown", async(function()
    local q = aio.Queue()
    q:put_nowait("a")
    q:shutdown()
    assert.equal("a", q:get())
    assert_raises(aio.QueueShutDown, q.get, q)
    assert_raises(aio.QueueShutDown, q.get_nowait, q)
  end))

  it("wakes blocked getters and putters with QueueShutDown", async(function()
    local q = aio.Queue(1)
    local getter = aio.create_task(function() return pcall(q.get, q) end)
    local full = aio.Queue(1)
    full:put_nowait(0)
    local putter = aio.create_task(function() return pcall(full.put, full, 1) end)
    settle()
    q:shutdown()
    full:shutdown()
    local ok, err = getter:await()
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.QueueShutDown), tostring(err))
    ok, err = putter:await()
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.QueueShutDown), tostring(err))
    assert.same({ 0 }, drain(full))
  end))

  it("immediate drops the items, counts them done and releases join", async(function()
    local q = aio.Queue()
    for i = 1, 3 do q:put_nowait(i) end
    local joiner = aio.create_task(function() q:join(); return "joined" end)
    settle()
    q:shutdown(true)
    assert.equal("joined", joiner:await())
    assert.equal(0, q:qsize())
    assert_raises(aio.QueueShutDown, q.get_nowait, q)
  end))
end)
