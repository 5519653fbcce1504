-- Task combinators (API.md §3): wait, wait_for, gather, as_completed, shield, aio.timeout,
-- TaskGroup, aio.run and ensure_future. Ordering is driven by futures the spec completes
-- itself, never by racing timers.
local aio = require "aloop"
local H = require "spec.helper"

-- A body as a task (aloop.busted): fails on errors, leftovers and unretrieved errors.
local async = H.async

local function is_cancelled_error(err) return aio.iserror(err, aio.CancelledError) end
local function is_timeout_error(err) return aio.iserror(err, aio.TimeoutError) end

local function new_future() return aio.get_running_loop():create_future() end

-- A task that waits for fut and returns what it gives.
local function waiter_task(fut) return aio.create_task(function() return fut:await() end) end

local function count(set)
  local n = 0
  for _ in pairs(set) do n = n + 1 end
  return n
end

-- Cancels the tasks and waits until they are done.
local function cancel_all(...)
  for _, t in ipairs({ ... }) do t:cancel() end
  for _, t in ipairs({ ... }) do pcall(aio.await, t) end
end

describe("aio.wait", function()
  it("ALL_COMPLETED (the default) waits for everything", async(function()
    local f1, f2 = new_future(), new_future()
    local a, b = waiter_task(f1), waiter_task(f2)
    local loop = aio.get_running_loop()
    loop:call_soon(f2.set_result, f2, 2)
    loop:call_soon(function() loop:call_soon(f1.set_result, f1, 1) end)
    local done, pending = aio.wait({ a, b })
    assert.same({ [a] = true, [b] = true }, done)
    assert.same({}, pending)
    assert.equal(1, a:result())
    assert.equal(2, b:result())
  end))

  it("FIRST_COMPLETED returns as soon as one is done", async(function()
    local f1, f2 = new_future(), new_future()
    local a, b = waiter_task(f1), waiter_task(f2)
    aio.get_running_loop():call_soon(f2.set_result, f2, "b")
    local done, pending = aio.wait({ a, b }, { return_when = aio.FIRST_COMPLETED })
    assert.same({ [b] = true }, done)
    assert.same({ [a] = true }, pending)
    assert.is_false(a:done())
    cancel_all(a)
  end))

  it("FIRST_EXCEPTION returns at the first error", async(function()
    local forever = new_future()
    local ok_task = aio.create_task(function() return "fine" end)
    local bad = aio.create_task(function() aio.sleep(0); aio.sleep(0); error("bad", 0) end)
    local slow = waiter_task(forever)
    local done, pending = aio.wait({ ok_task, bad, slow }, { return_when = aio.FIRST_EXCEPTION })
    assert.same({ [ok_task] = true, [bad] = true }, done)
    assert.same({ [slow] = true }, pending)
    assert.equal("bad", bad:exception())
    cancel_all(slow)
  end))

  it("FIRST_EXCEPTION without errors waits for everything", async(function()
    local a = aio.create_task(function() aio.sleep(0); return 1 end)
    local b = aio.create_task(function() aio.sleep(0); aio.sleep(0); return 2 end)
    local done, pending = aio.wait({ a, b }, { return_when = aio.FIRST_EXCEPTION })
    assert.equal(2, count(done))
    assert.same({}, pending)
  end))

  it("with a timeout leaves the rest pending and does not cancel it", async(function()
    local forever = new_future()
    local quick = aio.create_task(function() return 1 end)
    local slow = waiter_task(forever)
    local done, pending = aio.wait({ quick, slow }, { timeout = 0.01 })
    assert.same({ [quick] = true }, done)
    assert.same({ [slow] = true }, pending)
    assert.is_false(slow:done())
    forever:set_result("late")
    assert.equal("late", slow:await())
  end))

  it("accepts a set (table keyed by futures)", async(function()
    local a = aio.create_task(function() return 1 end)
    local b = aio.create_task(function() return 2 end)
    local done, pending = aio.wait({ [a] = true, [b] = true })
    assert.same({ [a] = true, [b] = true }, done)
    assert.same({}, pending)
  end))

  it("raises on an empty set", async(function()
    local ok, err = pcall(aio.wait, {})
    assert.is_false(ok)
    assert.matches("empty", tostring(err), 1, true)
  end))

  it("raises on a bad return_when", async(function()
    local a = aio.create_task(function() end)
    assert.has_error(function() aio.wait({ a }, { return_when = "SOMETIME" }) end)
    a:await()
  end))
end)

describe("aio.wait_for", function()
  it("returns the results when in time", async(function()
    assert.same({ 1, 2, n = 2 }, table.pack(aio.wait_for(aio.coro(function()
      aio.sleep(0)
      return 1, 2
    end), 10)))
  end))

  it("with no timeout simply awaits", async(function()
    local t = aio.create_task(function() aio.sleep(0); return "x" end)
    assert.equal("x", aio.wait_for(t, nil))
  end))

  it("raises TimeoutError only after the inner task has finished its cleanup", async(function()
    local cleaned = false
    local inner = aio.create_task(function()
      local ok, err = pcall(aio.sleep, 10)
      assert(not ok and aio.iserror(err, aio.CancelledError))
      aio.sleep(0.005)
      aio.sleep(0)
      cleaned = true
      error(err, 0)
    end)
    local ok, err = pcall(aio.wait_for, inner, 0.01)
    assert.is_false(ok)
    assert.is_true(is_timeout_error(err))
    assert.is_true(cleaned)
    assert.is_true(inner:cancelled())
    assert.equal(0, aio.current_task():cancelling())
  end))

  it("with timeout 0 on an unfinished awaitable times out", async(function()
    local fut = new_future()
    local ok, err = pcall(aio.wait_for, fut, 0)
    assert.is_false(ok)
    assert.is_true(is_timeout_error(err))
    assert.is_true(fut:cancelled())
  end))

  it("propagates the cancellation of its caller to the inner task", async(function()
    local inner_err
    local inner = aio.create_task(function()
      local ok, err = pcall(aio.sleep, 10)
      inner_err = err
      error(err, 0)
    end)
    local caller = aio.create_task(function() return aio.wait_for(inner, 10) end)
    aio.sleep(0)
    caller:cancel("outer")
    local ok, err = pcall(aio.await, caller)
    assert.is_false(ok)
    assert.is_true(is_cancelled_error(err))
    assert.is_false(is_timeout_error(err))
    assert.is_true(caller:cancelled())
    assert.is_true(inner:cancelled())
    assert.is_true(is_cancelled_error(inner_err))
  end))

  it("returns the value of an inner task that suppresses the cancellation", async(function()
    local inner = aio.create_task(function()
      local ok = pcall(aio.sleep, 10)
      return ok and "slept" or "suppressed"
    end)
    assert.equal("suppressed", aio.wait_for(inner, 0.01))
    assert.is_false(inner:cancelled())
  end))

  it("accepts a plain function, called with no arguments", async(function()
    assert.equal(0, aio.wait_for(function(...) return select("#", ...) end, 10))
  end))
end)

describe("aio.gather", function()
  it("returns the results in argument order, not completion order", async(function()
    local function after(n, v)
      return aio.coro(function()
        for _ = 1, n do aio.sleep(0) end
        return v
      end)
    end
    local order = {}
    local res = aio.gather(after(3, "a"), after(1, "b"), after(2, "c"), aio.coro(function()
      order[#order + 1] = "d"; return "d"
    end))
    assert.same({ "a", "b", "c", "d" }, { res[1], res[2], res[3], res[4] })
  end))

  it("accepts tasks, futures and plain functions", async(function()
    local fut = new_future()
    aio.get_running_loop():call_soon(fut.set_result, fut, "f")
    local t = aio.create_task(function() return "t" end)
    local res = aio.gather(t, fut, function(...) return select("#", ...) end)
    assert.same({ "t", "f", 0 }, { res[1], res[2], res[3] })
  end))

  it("keeps nil results in place", async(function()
    local res = aio.gather(function() return nil end, function() return 2 end)
    assert.is_nil(res[1])
    assert.equal(2, res[2])
    assert.equal(2, res.n)
  end))

  it("raises the first error", async(function()
    local forever = new_future()
    local other = waiter_task(forever)
    local ok, err = pcall(aio.gather, other, function() aio.sleep(0); error("failed", 0) end)
    assert.is_false(ok)
    assert.equal("failed", err)
    -- the other children are not cancelled (as in asyncio)
    assert.is_false(other:done())
    forever:set_result()
    other:await()
  end))

  it("with return_exceptions puts errors in place", async(function()
    local cancelled = aio.create_task(aio.sleep, 10)
    cancelled:cancel()
    local res = aio.gather({
      function() return 1 end,
      function() error("oops", 0) end,
      function() error(aio.Error("typed")) end,
      cancelled,
    }, { return_exceptions = true })
    assert.equal(1, res[1])
    assert.equal("oops", res[2])
    assert.is_true(aio.iserror(res[3], aio.Error))
    assert.equal("typed", res[3].message)
    assert.is_true(is_cancelled_error(res[4]))
  end))

  it("takes a list and options", async(function()
    local res = aio.gather({ aio.coro(function() return 1 end), aio.coro(function() return 2 end) }, {})
    assert.same({ 1, 2 }, { res[1], res[2] })
    assert.same({ n = 0 }, aio.gather({}))
  end))

  it("cancelled from outside cancels its children", async(function()
    local a_err
    local a = aio.create_task(function()
      local _, err = pcall(aio.sleep, 10)
      a_err = err
      error(err, 0)
    end)
    local b = aio.create_task(aio.sleep, 10)
    local caller = aio.create_task(function() return aio.gather(a, b) end)
    aio.sleep(0)
    caller:cancel()
    local ok, err = pcall(aio.await, caller)
    assert.is_false(ok)
    assert.is_true(is_cancelled_error(err))
    assert.is_true(a:cancelled())
    assert.is_true(b:cancelled())
    assert.is_true(is_cancelled_error(a_err))
  end))

  it("with return_exceptions does not swallow its own cancellation", async(function()
    local a = aio.create_task(aio.sleep, 10)
    local reached = false
    local caller = aio.create_task(function()
      local res = aio.gather({ a }, { return_exceptions = true })
      reached = true
      return res
    end)
    aio.sleep(0)
    caller:cancel()
    local ok, err = pcall(aio.await, caller)
    assert.is_false(ok)
    assert.is_true(is_cancelled_error(err))
    assert.is_false(reached)
    assert.is_true(caller:cancelled())
    assert.is_true(a:cancelled())
  end))

  it("outside a task returns a future for run_until_complete", function()
    local loop = aio.new_event_loop()
    aio.set_event_loop(loop)
    local g = aio.gather(aio.coro(function() aio.sleep(0); return "x" end), function() return "y" end)
    assert.is_true(aio.isfuture(g))
    local res = loop:run_until_complete(g)
    aio.set_event_loop(nil)
    loop:close()
    assert.same({ "x", "y" }, { res[1], res[2] })
  end)

  it("outside a task, cancelling the returned future cancels the children", function()
    local loop = aio.new_event_loop()
    aio.set_event_loop(loop)
    local child = loop:create_task(aio.sleep, 10)
    local g = aio.gather(child)
    loop:call_soon(function() loop:call_soon(function() g:cancel() end) end)
    local ok, err = pcall(loop.run_until_complete, loop, g)
    aio.set_event_loop(nil)
    loop:close()
    assert.is_false(ok)
    assert.is_true(is_cancelled_error(err))
    assert.is_true(child:cancelled())
  end)
end)

describe("aio.as_completed", function()
  it("yields the futures in completion order", async(function()
    local fa, fb, fc = new_future(), new_future(), new_future()
    local a, b, c = waiter_task(fa), waiter_task(fb), waiter_task(fc)
    local loop = aio.get_running_loop()
    loop:call_soon(function()
      fc:set_result("c")
      loop:call_soon(function()
        fa:set_result("a")
        loop:call_soon(fb.set_result, fb, "b")
      end)
    end)
    local order = {}
    for f in aio.as_completed({ a, b, c }) do order[#order + 1] = f:await() end
    assert.same({ "c", "a", "b" }, order)
  end))

  it("raises TimeoutError when the rest is too slow", async(function()
    local forever = new_future()
    local quick = aio.create_task(function() return "q" end)
    local slow = waiter_task(forever)
    local got = {}
    local ok, err = pcall(function()
      for f in aio.as_completed({ quick, slow }, { timeout = 0.01 }) do got[#got + 1] = f:result() end
    end)
    assert.is_false(ok)
    assert.is_true(is_timeout_error(err))
    assert.same({ "q" }, got)
    cancel_all(slow)
  end))
end)

describe("aio.shield", function()
  it("cancelling the caller does not cancel the shielded task", async(function()
    local fut = new_future()
    local inner = waiter_task(fut)
    local caller = aio.create_task(function() return aio.shield(inner) end)
    aio.sleep(0)
    caller:cancel()
    local ok, err = pcall(aio.await, caller)
    assert.is_false(ok)
    assert.is_true(is_cancelled_error(err))
    assert.is_false(inner:done())
    fut:set_result("kept")
    assert.equal("kept", inner:await())
  end))

  it("returns the result when not cancelled", async(function()
    assert.equal(5, aio.shield(aio.coro(function() aio.sleep(0); return 5 end)))
  end))
end)

describe("aio.timeout", function()
  it("turns an expiry into a TimeoutError out of the scope", async(function()
    local after = false
    local ok, err = pcall(function()
      local _ <close> = aio.timeout(0.01)
      aio.sleep(10)
      after = true
    end)
    assert.is_false(ok)
    assert.is_true(is_timeout_error(err))
    assert.is_false(after)
    assert.equal(0, aio.current_task():cancelling())
    -- the task goes on normally
    assert.equal("next", aio.sleep(0, "next"))
  end))

  it("has no effect when the body finishes in time", async(function()
    local t
    local r = (function()
      local tm <close> = aio.timeout(10)
      t = tm
      return aio.sleep(0, "in time")
    end)()
    assert.equal("in time", r)
    assert.is_false(t:expired())
    assert.equal(0, aio.current_task():cancelling())
    aio.sleep(0)
  end))

  it("supports when, reschedule and expired", async(function()
    local loop = aio.get_running_loop()
    local tm
    local ok, err = pcall(function()
      local t <close> = aio.timeout(nil)
      tm = t
      assert.is_nil(t:when())
      local deadline = loop:time() + 0.01
      t:reschedule(deadline)
      assert.equal(deadline, t:when())
      assert.is_false(t:expired())
      aio.sleep(10)
    end)
    assert.is_false(ok)
    assert.is_true(is_timeout_error(err))
    assert.is_true(tm:expired())
  end))

  it("cannot be rescheduled once its scope ended", async(function()
    local t
    do
      local tm <close> = aio.timeout(10)
      t = tm
    end
    local ok, err = pcall(t.reschedule, t, 1)
    assert.is_false(ok)
    assert.matches("finished", tostring(err), 1, true)
  end))

  it("can be pushed back with reschedule(nil)", async(function()
    local t
    local r = (function()
      local tm <close> = aio.timeout(0.001)
      t = tm
      tm:reschedule(nil)
      aio.sleep(0.005)
      return "survived"
    end)()
    assert.equal("survived", r)
    assert.is_false(t:expired())
  end))

  it("leaves a CancelledError from elsewhere a CancelledError", async(function()
    local t = aio.create_task(function()
      local _ <close> = aio.timeout(10)
      aio.sleep(10)
    end)
    aio.sleep(0)
    t:cancel()
    local ok, err = pcall(aio.await, t)
    assert.is_false(ok)
    assert.is_true(is_cancelled_error(err))
    assert.is_true(t:cancelled())
  end))

  it("nested: an inner expiry is the inner scope's TimeoutError only", async(function()
    local outer_t, inner_err
    local r = (function()
      local outer <close> = aio.timeout(10)
      outer_t = outer
      local ok, err = pcall(function()
        local _ <close> = aio.timeout(0.005)
        aio.sleep(10)
      end)
      inner_err = not ok and err
      return aio.sleep(0, "outer went on")
    end)()
    assert.equal("outer went on", r)
    assert.is_true(is_timeout_error(inner_err))
    assert.is_false(outer_t:expired())
  end))

  it("nested: an outer expiry passes through the inner scope", async(function()
    local inner_t, inner_saw
    local ok, err = pcall(function()
      local _ <close> = aio.timeout(0.005)
      local ok2, e = pcall(function()
        local inner <close> = aio.timeout(10)
        inner_t = inner
        aio.sleep(10)
      end)
      inner_saw = e
      if not ok2 then error(e, 0) end
    end)
    assert.is_false(ok)
    assert.is_true(is_timeout_error(err))
    assert.is_true(is_cancelled_error(inner_saw))
    assert.is_false(inner_t:expired())
  end))

  it("raises outside a task", function()
    assert.has_error(function() aio.timeout(1) end)
  end)
end)

describe("aio.TaskGroup", function()
  it("waits for every child at the end of the scope", async(function()
    local log = {}
    do
      local tg <close> = aio.TaskGroup()
      for i = 1, 3 do
        tg:create_task(function()
          for _ = 1, i do aio.sleep(0) end
          log[#log + 1] = i
        end)
      end
      assert.same({}, log)
    end
    assert.same({ 1, 2, 3 }, log)
  end))

  it("a failing child cancels the others and its error leaves the scope", async(function()
    local other
    local ok, err = pcall(function()
      local tg <close> = aio.TaskGroup()
      other = tg:create_task(aio.sleep, 10)
      tg:create_task(function() aio.sleep(0); error("child failed", 0) end)
    end)
    assert.is_false(ok)
    assert.equal("child failed", err)
    assert.is_true(other:cancelled())
    assert.equal(0, aio.current_task():cancelling())
  end))

  it("cancels the body when a child fails", async(function()
    local after, body_err = false, nil
    local other
    local ok, err = pcall(function()
      local tg <close> = aio.TaskGroup()
      other = tg:create_task(aio.sleep, 10)
      tg:create_task(function() aio.sleep(0); error("child failed", 0) end)
      local ok2, e = pcall(aio.sleep, 10)
      body_err = e
      if not ok2 then error(e, 0) end
      after = true
    end)
    assert.is_false(ok)
    assert.equal("child failed", err)
    assert.is_true(is_cancelled_error(body_err))
    assert.is_false(after)
    assert.is_true(other:cancelled())
    assert.is_true(other:done())
    assert.equal(0, aio.current_task():cancelling())
    assert.equal("next", aio.sleep(0, "next"))
  end))

  it("when the body raises, cancels the children and waits for their cleanup", async(function()
    local cleaned = false
    local child
    local ok, err = pcall(function()
      local tg <close> = aio.TaskGroup()
      child = tg:create_task(function()
        local ok2, e = pcall(aio.sleep, 10)
        aio.sleep(0.001)
        cleaned = true
        if not ok2 then error(e, 0) end
      end)
      aio.sleep(0)
      error("body failed", 0)
    end)
    assert.is_false(ok)
    assert.equal("body failed", err)
    assert.is_true(cleaned)
    assert.is_true(child:cancelled())
  end))

  it("returns the children's results through their tasks", async(function()
    local a, b
    do
      local tg <close> = aio.TaskGroup()
      a = tg:create_task(function() aio.sleep(0); return "a" end)
      b = tg:create_task(aio.coro(function(x) return x end, "b"))
    end
    assert.equal("a", a:result())
    assert.equal("b", b:result())
  end))

  it("refuses create_task after the scope ended", async(function()
    local group
    do
      local tg <close> = aio.TaskGroup()
      group = tg
      tg:create_task(function() end)
    end
    assert.has_error(function() group:create_task(function() end) end)
  end))

  it("passes the cancellation of the enclosing task on", async(function()
    local child
    local t = aio.create_task(function()
      local tg <close> = aio.TaskGroup()
      child = tg:create_task(aio.sleep, 10)
      aio.sleep(10)
    end)
    aio.sleep(0)
    t:cancel()
    local ok, err = pcall(aio.await, t)
    assert.is_false(ok)
    assert.is_true(is_cancelled_error(err))
    assert.is_true(t:cancelled())
    assert.is_true(child:cancelled())
  end))
end)

describe("aio.run", function()
  it("returns the results of main", function()
    assert.same({ 1, "two", n = 2 }, table.pack(aio.run(function(a)
      aio.sleep(0)
      return a, "two"
    end, 1)))
  end)

  it("cancels the tasks left over and closes its loop", function()
    local loop, leftover, leftover_err
    aio.run(function()
      loop = aio.get_running_loop()
      leftover = aio.create_task(function()
        local ok, err = pcall(aio.sleep, 10)
        leftover_err = err
        error(err, 0)
      end)
      aio.sleep(0)
    end)
    assert.is_true(leftover:cancelled())
    assert.is_true(is_cancelled_error(leftover_err))
    assert.is_true(loop:is_closed())
  end)

  it("raises the error of main", function()
    local ok, err = pcall(aio.run, function() aio.sleep(0); error("main failed", 0) end)
    assert.is_false(ok)
    assert.equal("main failed", err)
  end)

  it("raises inside a running loop", async(function()
    local ok, err = pcall(aio.run, function() end)
    assert.is_false(ok)
    assert.matches("running event loop", tostring(err), 1, true)
  end))
end)

describe("aio.ensure_future", function()
  it("returns a future unchanged", async(function()
    local fut = new_future()
    assert.equal(fut, aio.ensure_future(fut))
    local t = aio.create_task(function() end)
    assert.equal(t, aio.ensure_future(t))
    t:await()
  end))

  it("wraps a coroutine object or a function and its arguments in a task", async(function()
    local c = aio.coro(function(x) return x + 1 end, 1)
    local t1 = aio.ensure_future(c)
    local t2 = aio.ensure_future(function(a, b) return a * b end, 6, 7)
    assert.is_not_nil(aio.all_tasks()[t1])
    assert.equal(2, t1:await())
    assert.equal(42, t2:await())
  end))

  it("takes the loop from the options", function()
    local loop = aio.new_event_loop()
    local t = aio.ensure_future(aio.coro(function() return "on loop" end), { loop = loop })
    assert.equal(loop, t:get_loop())
    assert.equal("on loop", loop:run_until_complete(t))
    loop:close()
  end)
end)
