-- Tasks (API.md §1, §3): creation, coroutine objects, names, current_task/all_tasks, sleep,
-- suspending from any Lua construct, cancellation, to-be-closed variables, stacks, tracebacks.
local aio = require "aloop"
local H = require "spec.helper"

-- A body as a task (aloop.busted): fails on errors, leftovers and unretrieved errors.
local async = H.async

local THIS = "task_spec.lua"

-- The line after the caller's: `local L = next_line()` on the line just above a suspension.
local function next_line() return debug.getinfo(2, "l").currentline + 1 end

-- Runs fn as a task on a fresh loop whose exception handler collects the reports; returns
-- the reports (list of ctx tables) and fn's results.
local function run_collecting(fn)
  local loop = aio.new_event_loop()
  local reports = {}
  loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
  local res = table.pack(pcall(loop.run_until_complete, loop, fn, loop))
  loop:close()
  if not res[1] then error(res[2], 0) end
  return reports, table.unpack(res, 2, res.n)
end

local function is_cancelled_error(err) return aio.iserror(err, aio.CancelledError) end

describe("create_task", function()
  it("passes the arguments and keeps every result", async(function()
    local t = aio.create_task(function(a, b, c) return a + b, a * b, c, nil end, 3, 4, "x")
    assert.same({ 7, 12, "x", nil, n = 4 }, table.pack(aio.await(t)))
    assert.same({ 7, 12, "x", nil, n = 4 }, table.pack(t:result()))
  end))

  it("returns a task that is a future of the running loop", async(function()
    local t = aio.create_task(function() end)
    assert.is_true(aio.isfuture(t))
    assert.equal(aio.get_running_loop(), t:get_loop())
    t:await()
    assert.is_true(t:done())
  end))

  it("runs a task created with loop:create_task", async(function()
    local t = aio.get_running_loop():create_task(function(x) return x + 1 end, 41)
    assert.equal(42, t:await())
  end))
end)

describe("coroutine objects", function()
  it("aio.coro captures the call without running it", async(function()
    local ran = false
    local c = aio.coro(function(x, y) ran = true; return x * y end, 6, 7)
    assert.is_true(aio.iscoroutine(c))
    aio.sleep(0)
    assert.is_false(ran)
    assert.equal(42, aio.await(c))
    assert.is_true(ran)
  end))

  it("aio.async makes a coroutine function", async(function()
    local calls = 0
    local double = aio.async(function(x) calls = calls + 1; aio.sleep(0); return 2 * x, "two" end)
    local c = double(21)
    assert.is_true(aio.iscoroutine(c))
    assert.equal(0, calls)
    local a, b = c:await()
    assert.same({ 42, "two" }, { a, b })
    assert.equal(1, calls)
  end))

  it("awaiting a coroutine object runs it inline in the current task", async(function()
    local me = aio.current_task()
    local seen, tasks_before, tasks_inside = nil, 0, 0
    for _ in pairs(aio.all_tasks()) do tasks_before = tasks_before + 1 end
    local c = aio.coro(function()
      aio.sleep(0)
      seen = aio.current_task()
      for _ in pairs(aio.all_tasks()) do tasks_inside = tasks_inside + 1 end
      return "done"
    end)
    assert.equal("done", aio.await(c))
    assert.equal(me, seen)
    assert.equal(tasks_before, tasks_inside)
  end))

  it("a coroutine object can be turned into a task", async(function()
    local c = aio.coro(function(a) aio.sleep(0); return a .. "!" end, "hi")
    local t = aio.create_task(c)
    assert.equal(c, t:get_coro())
    assert.equal("hi!", t:await())
  end))

  it("aw:await() works on futures and tasks", async(function()
    local fut = aio.get_running_loop():create_future()
    aio.get_running_loop():call_soon(fut.set_result, fut, 1, 2)
    assert.same({ 1, 2 }, { fut:await() })
    local t = aio.create_task(function() aio.sleep(0); return "t" end)
    assert.equal("t", t:await())
  end))

  it("aio.await rejects what is not awaitable", async(function()
    local ok, err = pcall(aio.await, 42)
    assert.is_false(ok)
    assert.matches("aloop.await", tostring(err), 1, true)
  end))
end)

describe("task names", function()
  it("default to Task-N with increasing N", async(function()
    local a = aio.create_task(function() end)
    local b = aio.create_task(function() end)
    local na = tonumber(a:get_name():match("^Task%-(%d+)$"))
    local nb = tonumber(b:get_name():match("^Task%-(%d+)$"))
    assert.is_number(na)
    assert.equal(na + 1, nb)
    aio.gather(a, b)
  end))

  it("come from the {name=} option", async(function()
    local t = aio.create_task(aio.coro(function() end), { name = "worker" })
    assert.equal("worker", t:get_name())
    assert.matches("name='worker'", tostring(t), 1, true)
    t:await()
  end))

  it("can be changed with set_name", async(function()
    local me = aio.current_task()
    me:set_name("main-task")
    assert.equal("main-task", me:get_name())
    me:set_name(12)
    assert.equal("12", me:get_name())
  end))
end)

describe("current_task and all_tasks", function()
  it("current_task is nil outside tasks", function()
    assert.is_nil(aio.current_task())
    local loop = aio.new_event_loop()
    local in_cb = "unset"
    loop:call_soon(function() in_cb = aio.current_task(); loop:stop() end)
    loop:run_forever()
    loop:close()
    assert.is_nil(in_cb)
  end)

  it("current_task is the running task", async(function()
    local t
    t = aio.create_task(function() aio.sleep(0); return aio.current_task() end)
    assert.equal(t, t:await())
    assert.not_equal(t, aio.current_task())
  end))

  it("all_tasks is the set of unfinished tasks", async(function()
    local fut = aio.get_running_loop():create_future()
    local t = aio.create_task(function() return fut:await() end)
    local all = aio.all_tasks()
    assert.is_true(all[aio.current_task()])
    assert.is_true(all[t])
    fut:set_result()
    t:await()
    assert.is_nil(aio.all_tasks()[t])
    assert.is_true(aio.all_tasks()[aio.current_task()])
  end))
end)

describe("sleep", function()
  it("returns its extra arguments", async(function()
    assert.same({ 1, "a", n = 2 }, table.pack(aio.sleep(0, 1, "a")))
    assert.same({ "b", nil, 3, n = 3 }, table.pack(aio.sleep(0.001, "b", nil, 3)))
    assert.same({ n = 0 }, table.pack(aio.sleep(0)))
  end))

  it("sleep(0) yields exactly once: two tasks interleave", async(function()
    local log = {}
    local function worker(name)
      for i = 1, 3 do
        log[#log + 1] = name .. i
        aio.sleep(0)
      end
    end
    local a = aio.create_task(worker, "A")
    local b = aio.create_task(worker, "B")
    aio.gather(a, b)
    assert.same({ "A1", "B1", "A2", "B2", "A3", "B3" }, log)
  end))

  it("rejects NaN", async(function()
    assert.has_error(function() aio.sleep(0 / 0) end)
  end))

  it("sleepers wake in deadline order, equal delays in the order they slept", async(function()
    local log = {}
    local function sleeper(name, d) aio.sleep(d); log[#log + 1] = name end
    local ts = {}
    for i, spec in ipairs({ { "c", 0.03 }, { "a", 0.01 }, { "b", 0.02 }, { "a2", 0.01 } }) do
      ts[i] = aio.create_task(sleeper, spec[1], spec[2])
    end
    aio.gather(ts)
    -- a and a2 both sleep 0.01 from the same iteration; a started first
    assert.same({ "a", "a2", "b", "c" }, log)
  end))

  it("many cancelled sleeps leave the timer heap, and timers keep working", async(function()
    local tasks = {}
    for i = 1, 300 do tasks[i] = aio.create_task(aio.sleep, 60) end
    aio.sleep(0) -- all of them are asleep now
    for i = 1, 300 do assert.is_true(tasks[i]:cancel()) end
    local res = aio.gather(tasks, { return_exceptions = true })
    for i = 1, 300 do assert.is_true(is_cancelled_error(res[i]), "task " .. i) end
    assert.equal("done", aio.sleep(0.01, "done"))
  end))

  it("a task cancelled in the step where it starts to sleep gets CancelledError at that sleep", async(function()
    local t = aio.create_task(function()
      aio.current_task():cancel("now")
      local ok, err = pcall(aio.sleep, 60)
      return ok, err.message
    end)
    assert.same({ false, "now" }, { t:await() })
  end))
end)

describe("suspending from anywhere in a task", function()
  it("works inside nested pcall", async(function()
    local ok1, ok2, err = pcall(function()
      return pcall(function()
        aio.sleep(0)
        aio.sleep(0.001)
        error("inner", 0)
      end)
    end)
    assert.is_true(ok1)
    assert.is_false(ok2)
    assert.equal("inner", err)
    -- and the task goes on suspending afterwards
    assert.equal("after", aio.sleep(0, "after"))
  end))

  it("works inside metamethods", async(function()
    local mt = {}
    mt.__index = function(_, k) return aio.sleep(0, "idx:" .. k) end
    mt.__add = function(a, b) return aio.sleep(0.001, a.v + b.v) end
    mt.__lt = function(a, b) aio.sleep(0); return a.v < b.v end
    mt.__call = function(self, x) return aio.sleep(0, self.v * x) end
    local a, b = setmetatable({ v = 1 }, mt), setmetatable({ v = 2 }, mt)
    assert.equal("idx:foo", a.foo)
    assert.equal(3, a + b)
    assert.is_true(a < b)
    assert.is_false(b < a)
    assert.equal(10, b(5))
  end))

  it("works inside a for-loop iterator", async(function()
    local function slow_range(n)
      local i = 0
      return function()
        i = i + 1
        if i <= n then return aio.sleep(0, i) end
      end
    end
    local got = {}
    for i in slow_range(3) do got[#got + 1] = i end
    assert.same({ 1, 2, 3 }, got)
  end))

  it("fails clearly outside a task, naming the fix", function()
    local ok, err = pcall(aio.sleep, 0)
    assert.is_false(ok)
    assert.matches("not inside a task", tostring(err), 1, true)
    assert.matches("run_until_complete", tostring(err), 1, true)
    assert.matches("aio.run", tostring(err), 1, true)
  end)

  it("fails clearly from a foreign coroutine inside a task", async(function()
    local co = coroutine.wrap(function() return pcall(aio.sleep, 0) end)
    local ok, err = co()
    assert.is_false(ok)
    assert.matches("coroutine", tostring(err), 1, true)
  end))

  it("a coroutine.yield of a non-future fails the task with 'bad yield'", async(function()
    local t = aio.create_task(function() coroutine.yield(42) end)
    local ok, err = pcall(aio.await, t)
    assert.is_false(ok)
    assert.matches("bad yield", tostring(err), 1, true)
    assert.is_false(t:cancelled())
  end))

  it("a task raising a nil error still fails", async(function()
    local t = aio.create_task(function() aio.sleep(0); error() end)
    local ok = pcall(aio.await, t)
    assert.is_false(ok)
    assert.is_not_nil(t:exception())
    local ok2, err = pcall(aio.gather, function() error(nil) end)
    assert.is_false(ok2)
    assert.is_not_nil(err)
  end))

  it("a bad yield is reported with the line of the yield", function()
    local line
    local reports = run_collecting(function()
      do
        aio.create_task(function()
          line = next_line()
          coroutine.yield("x")
        end)
      end
      aio.sleep(0)
      aio.sleep(0)
      collectgarbage()
      collectgarbage()
    end)
    assert.equal(1, #reports)
    assert.matches("bad yield", tostring(reports[1].exception), 1, true)
    assert.matches(THIS .. ":" .. line, reports[1].traceback, 1, true)
  end)

  it("a bare coroutine.yield() fails the task with 'bad yield'", async(function()
    local t = aio.create_task(function() coroutine.yield() end)
    local ok, err = pcall(aio.await, t)
    assert.is_false(ok)
    assert.matches("bad yield", tostring(err), 1, true)
  end))
end)

describe("an unreferenced task", function()
  it("still runs to completion after a full collection", async(function()
    local fut = aio.get_running_loop():create_future()
    local weak = setmetatable({}, { __mode = "k" })
    do
      weak[aio.create_task(function()
        aio.sleep(0)
        collectgarbage()
        aio.sleep(0.001)
        fut:set_result("finished")
      end)] = true
    end
    collectgarbage()
    collectgarbage()
    assert.is_not_nil(next(weak))
    assert.equal("finished", fut:await())
  end))
end)

describe("cancellation", function()
  it("raises CancelledError at the suspension point with the message", async(function()
    local caught
    local t = aio.create_task(function()
      local ok, err = pcall(aio.sleep, 10)
      caught = err
      assert(not ok)
      error(err, 0)
    end)
    aio.sleep(0)
    assert.is_true(t:cancel("stop it"))
    local ok, err = pcall(aio.await, t)
    assert.is_false(ok)
    assert.is_true(is_cancelled_error(err))
    assert.is_true(is_cancelled_error(caught))
    assert.equal("stop it", caught.message)
    assert.is_true(t:cancelled())
    assert.is_true(t:done())
    assert.has_error(function() t:result() end)
  end))

  it("can be caught: the task goes on and returns normally", async(function()
    local t = aio.create_task(function()
      local ok, err = pcall(aio.sleep, 10)
      assert(not ok and aio.iserror(err, aio.CancelledError))
      aio.sleep(0)
      return "survived"
    end)
    aio.sleep(0)
    t:cancel()
    assert.equal("survived", t:await())
    assert.is_false(t:cancelled())
    assert.equal(1, t:cancelling())
  end))

  it("counts requests with cancelling() and uncancel()", async(function()
    local t = aio.create_task(function()
      for _ = 1, 2 do pcall(aio.sleep, 10) end
      local me = aio.current_task()
      local n = me:cancelling()
      me:uncancel()
      return n, me:cancelling()
    end)
    aio.sleep(0)
    assert.equal(0, t:cancelling())
    t:cancel()
    assert.equal(1, t:cancelling())
    aio.sleep(0)
    t:cancel()
    assert.equal(2, t:cancelling())
    assert.same({ 2, 1 }, { t:await() })
  end))

  it("uncancel() down to zero rescinds a pending request", async(function()
    local t = aio.create_task(function()
      local me = aio.current_task()
      me:cancel()
      assert.equal(0, me:uncancel())
      return aio.sleep(0, "not cancelled")
    end)
    assert.equal("not cancelled", t:await())
    assert.is_false(t:cancelled())
  end))

  it("cancel() returns false on a finished task", async(function()
    local t = aio.create_task(function() return 1 end)
    t:await()
    assert.is_false(t:cancel())
    assert.is_false(t:cancelled())
    assert.equal(1, t:result())
  end))

  it("propagates to the task being awaited", async(function()
    local inner = aio.create_task(aio.sleep, 10)
    local outer = aio.create_task(function() return inner:await() end)
    aio.sleep(0)
    outer:cancel("bye")
    local ok, err = pcall(aio.await, outer)
    assert.is_false(ok)
    assert.is_true(is_cancelled_error(err))
    assert.is_true(inner:cancelled())
    assert.is_true(outer:cancelled())
  end))

  it("propagates to the future being awaited", async(function()
    local fut = aio.get_running_loop():create_future()
    local t = aio.create_task(function() return fut:await() end)
    aio.sleep(0)
    t:cancel()
    assert.is_true(fut:cancelled())
    assert.has_error(function() t:await() end)
    assert.is_true(t:cancelled())
  end))

  it("before the first step: the body never runs", async(function()
    local ran = false
    local t = aio.create_task(function() ran = true end)
    assert.is_true(t:cancel())
    local ok, err = pcall(aio.await, t)
    assert.is_false(ok)
    assert.is_true(is_cancelled_error(err))
    assert.is_false(ran)
    assert.is_true(t:cancelled())
  end))

  it("of the current task from inside: raised at its next suspension", async(function()
    local log = {}
    local t = aio.create_task(function()
      aio.current_task():cancel("self")
      log[#log + 1] = "still running"
      local ok, err = pcall(aio.sleep, 0)
      log[#log + 1] = (not ok and is_cancelled_error(err)) and err.message or "no error"
      error(err, 0)
    end)
    assert.has_error(function() t:await() end)
    assert.same({ "still running", "self" }, log)
    assert.is_true(t:cancelled())
  end))

  it("of the current task from inside, then a timed sleep: cancelled too", async(function()
    local t = aio.create_task(function()
      aio.current_task():cancel()
      aio.sleep(10)
    end)
    assert.has_error(function() t:await() end)
    assert.is_true(t:cancelled())
  end))

  it("in the task's final step: it ends cancelled", async(function()
    local t = aio.create_task(function()
      aio.current_task():cancel("late")
      return "result"
    end)
    local ok, err = pcall(aio.await, t)
    assert.is_false(ok)
    assert.is_true(is_cancelled_error(err))
    assert.equal("late", err.message)
    assert.is_true(t:cancelled())
  end))

  it("from another task in the iteration the task returns", async(function()
    -- the target is woken and the canceller runs in the same iteration, before it
    local fut = aio.get_running_loop():create_future()
    local target, canceller
    canceller = aio.create_task(function()
      fut:await()
      return target:cancel()
    end)
    target = aio.create_task(function()
      fut:await()
      return "done"
    end)
    aio.sleep(0)
    fut:set_result()
    local requested = canceller:await()
    assert.is_true(requested)
    local ok, err = pcall(aio.await, target)
    -- asyncio: the request lands while the target waits for its step, so the step raises
    assert.is_false(ok)
    assert.is_true(is_cancelled_error(err))
    assert.is_true(target:cancelled())
  end))
end)

describe("to-be-closed variables in a task", function()
  local function closer(log, name, suspend)
    return setmetatable({}, {
      __close = function(_, err)
        if suspend then aio.sleep(0) end
        log[#log + 1] = name .. ":" .. (err == nil and "ok" or is_cancelled_error(err) and "cancelled"
          or "error")
      end,
    })
  end

  it("are closed on normal return, and __close may suspend", async(function()
    local log = {}
    local t = aio.create_task(function()
      local a <close> = closer(log, "a", true)
      local b <close> = closer(log, "b", true)
      aio.sleep(0)
      return "r"
    end)
    assert.equal("r", t:await())
    assert.same({ "b:ok", "a:ok" }, log)
  end))

  it("are closed when the task raises", async(function()
    local log = {}
    local t = aio.create_task(function()
      local a <close> = closer(log, "a")
      aio.sleep(0)
      error("boom", 0)
    end)
    local ok, err = pcall(aio.await, t)
    assert.is_false(ok)
    assert.equal("boom", err)
    assert.same({ "a:error" }, log)
  end))

  it("are closed when the task is cancelled", async(function()
    local log = {}
    local t = aio.create_task(function()
      local a <close> = closer(log, "a")
      aio.sleep(10)
    end)
    aio.sleep(0)
    t:cancel()
    assert.has_error(function() t:await() end)
    assert.same({ "a:cancelled" }, log)
    assert.is_true(t:cancelled())
  end))

  it("are closed when the task fails with a bad yield", async(function()
    local log = {}
    local t = aio.create_task(function()
      local a <close> = closer(log, "a")
      coroutine.yield("nope")
    end)
    assert.has_error(function() t:await() end)
    assert.same(1, #log)
  end))
end)

describe("stacks", function()
  it("get_stack returns the frames of the suspended task with the suspension line", async(function()
    local line
    local function deep()
      line = next_line()
      aio.sleep(10)
    end
    local t = aio.create_task(function() deep() end)
    aio.sleep(0)
    local frames = t:get_stack()
    assert.is_true(#frames >= 2)
    assert.matches(THIS, frames[1].source, 1, true)
    assert.equal(line, frames[1].line)
    t:cancel()
    pcall(aio.await, t)
    assert.same({}, t:get_stack())
  end))

  it("print_stack writes 'Stack for ...' to the given file", async(function()
    local line
    local t = aio.create_task(function()
      line = next_line()
      aio.sleep(10)
    end, nil)
    t:set_name("printed")
    aio.sleep(0)
    local out = {}
    t:print_stack({ write = function(_, s) out[#out + 1] = s end })
    local text = table.concat(out)
    assert.matches("^Stack for <Task pending name='printed'>", text)
    assert.matches(THIS .. ":" .. line, text, 1, true)
    t:cancel()
    pcall(aio.await, t)
  end))
end)

describe("tracebacks", function()
  it("of a task error that nobody retrieved show the raising line", function()
    local line
    local reports = run_collecting(function()
      do
        aio.create_task(function()
          aio.sleep(0)
          line = next_line()
          error("kaboom")
        end)
      end
      aio.sleep(0.001)
      aio.sleep(0)
      collectgarbage()
      collectgarbage()
    end)
    assert.equal(1, #reports)
    local ctx = reports[1]
    assert.equal("Task exception was never retrieved", ctx.message)
    assert.matches("kaboom", tostring(ctx.exception), 1, true)
    assert.matches(THIS .. ":" .. line, ctx.traceback, 1, true)
  end)

  it("of an aloop error raised in a task show the raising line", async(function()
    local line
    local t = aio.create_task(function()
      aio.sleep(0)
      line = next_line()
      error(aio.Error("typed"))
    end)
    local ok, err = pcall(aio.await, t)
    assert.is_false(ok)
    assert.matches(THIS .. ":" .. line, err.traceback, 1, true)
  end))

  it("of a CancelledError show the suspension line", async(function()
    local line, caught
    local t = aio.create_task(function()
      line = next_line()
      local ok, err = pcall(aio.sleep, 10)
      caught = err
      return ok
    end)
    aio.sleep(0)
    t:cancel()
    t:await()
    assert.is_true(is_cancelled_error(caught))
    assert.is_string(caught.traceback)
    assert.matches(THIS .. ":" .. line, caught.traceback, 1, true)
  end))

  it("of a CancelledError raised at sleep(0) show the suspension line", async(function()
    local line, caught
    local t = aio.create_task(function()
      aio.current_task():cancel()
      line = next_line()
      local ok, err = pcall(aio.sleep, 0)
      caught = err
      return ok
    end)
    t:await()
    assert.is_true(is_cancelled_error(caught))
    assert.matches(THIS .. ":" .. line, caught.traceback, 1, true)
  end))

  it("of a CancelledError from an awaited future show the suspension line", async(function()
    local line, caught
    local fut = aio.get_running_loop():create_future()
    local t = aio.create_task(function()
      line = next_line()
      local ok, err = pcall(fut.await, fut)
      caught = err
      return ok
    end)
    aio.sleep(0)
    t:cancel()
    t:await()
    assert.is_true(is_cancelled_error(caught))
    assert.matches(THIS .. ":" .. line, caught.traceback, 1, true)
  end))
end)

describe("loop:close()", function()
  it("reports a pending task as destroyed", function()
    local loop = aio.new_event_loop()
    local reports = {}
    loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
    local fut = loop:create_future()
    local t = loop:create_task(function() fut:await() end)
    loop:run_until_complete(function() aio.sleep(0) end)
    assert.is_false(t:done())
    loop:close()
    assert.equal(1, #reports)
    assert.equal("Task was destroyed but it is pending!", reports[1].message)
    assert.equal(t, reports[1].task)
  end)
end)
