-- The event loop (API.md §2): loops and the current loop, backends, run_forever/stop,
-- run_until_complete, close, call_soon/call_later/call_at and their handles, argument errors that
-- name the method, and the exception handler (every error raised by user code is reported and the
-- loop keeps running).
local aio = require "aloop"
local H = require "spec.helper"
local with_loop, run_once, recording = H.with_loop, H.run_once, H.recording

describe("event loops", function()
  after_each(function() aio.set_event_loop(nil) end)

  it("new_event_loop returns a new, open, idle loop each time", function()
    local a, b = aio.new_event_loop(), aio.new_event_loop()
    assert.is_not.equal(a, b)
    assert.is_false(a:is_running())
    assert.is_false(a:is_closed())
    a:close()
    b:close()
  end)

  it("get_event_loop returns the same loop until set_event_loop changes it", function()
    aio.set_event_loop(nil)
    local a = aio.get_event_loop()
    assert.equal(a, aio.get_event_loop())
    local b = aio.new_event_loop()
    aio.set_event_loop(b)
    assert.equal(b, aio.get_event_loop())
    aio.set_event_loop(nil)
    local c = aio.get_event_loop()
    assert.is_not.equal(b, c)
    a:close()
    b:close()
    c:close()
  end)

  it("get_event_loop returns a fresh loop once the current one was closed", function()
    aio.set_event_loop(nil)
    local a = aio.get_event_loop()
    a:close()
    local b = aio.get_event_loop()
    assert.is_not.equal(a, b)
    assert.is_false(b:is_closed())
    b:close()
  end)

  it("set_event_loop rejects what is not a loop", function()
    assert.has_error(function() aio.set_event_loop({}) end)
    assert.has_error(function() aio.set_event_loop(42) end)
  end)

  it("get_running_loop raises outside a running loop", function()
    local ok, err = pcall(aio.get_running_loop)
    assert.is_false(ok)
    assert.matches("no running event loop", tostring(err))
  end)

  it("get_running_loop and get_event_loop return the running loop inside callbacks and tasks", function()
    with_loop(function(loop)
      local other = aio.new_event_loop()
      aio.set_event_loop(other)
      local seen = {}
      loop:call_soon(function()
        seen.cb_running = aio.get_running_loop()
        seen.cb_event = aio.get_event_loop()
      end)
      loop:run_until_complete(function()
        seen.task_running = aio.get_running_loop()
        seen.task_event = aio.get_event_loop()
      end)
      assert.equal(loop, seen.cb_running)
      assert.equal(loop, seen.cb_event)
      assert.equal(loop, seen.task_running)
      assert.equal(loop, seen.task_event)
      assert.has_error(aio.get_running_loop) -- not running any more
      other:close()
    end)
  end)

  it("is_running is true only while the loop runs", function()
    with_loop(function(loop)
      local inside
      loop:call_soon(function() inside = loop:is_running() end)
      assert.is_false(loop:is_running())
      run_once(loop)
      assert.is_true(inside)
      assert.is_false(loop:is_running())
    end)
  end)

  it("time() is a monotonic float clock", function()
    with_loop(function(loop)
      local t1 = loop:time()
      assert.equal("number", type(t1))
      assert.equal("float", math.type(t1))
      local t2
      loop:call_soon(function() t2 = loop:time() end)
      run_once(loop)
      assert.is_true(t2 >= t1)
      assert.is_true(loop:time() >= t2)
    end)
  end)

  it("tostring shows the loop", function()
    with_loop(function(loop) assert.matches("^<aloop%.Loop", tostring(loop)) end)
  end)
end)

describe("backends", function()
  for _, name in ipairs { "select", "poll", "epoll" } do
    it("opts.backend = '" .. name .. "' picks that backend, and it runs callbacks and timers", function()
      local loop = aio.new_event_loop { backend = name }
      assert.equal(name, loop:backend())
      local got = loop:run_until_complete(function() return aio.sleep(0.001, "slept") end)
      assert.equal("slept", got)
      loop:close()
    end)
  end

  it("an unknown backend name is a clear error", function()
    local ok, err = pcall(aio.new_event_loop, { backend = "nosuchbackend" })
    assert.is_false(ok)
    assert.matches("unknown backend 'nosuchbackend'", tostring(err))
  end)

  it("a backend name that is not a string is an error", function()
    assert.has_error(function() aio.new_event_loop { backend = {} } end)
  end)

  it("ALOOP_BACKEND sets the default backend", function()
    local out, err, code = H.capture("ALOOP_BACKEND=poll " .. H.bin
      .. [[ -e 'local aio = require "aloop"; print(aio.new_event_loop():backend())']])
    assert.equal(0, code, err)
    assert.equal("poll\n", out)
  end)

  it("opts.backend wins over ALOOP_BACKEND", function()
    local out, err, code = H.capture("ALOOP_BACKEND=poll " .. H.bin
      .. [[ -e 'local aio = require "aloop"; print(aio.new_event_loop{backend = "select"}:backend())']])
    assert.equal(0, code, err)
    assert.equal("select\n", out)
  end)

  it("an unknown ALOOP_BACKEND is a clear error", function()
    local _, err, code = H.capture("ALOOP_BACKEND=bogus " .. H.bin
      .. [[ -e 'local aio = require "aloop"; aio.new_event_loop()']])
    assert.equal(1, code)
    assert.matches("unknown backend 'bogus'", err)
  end)
end)

describe("run_forever and stop", function()
  it("stop lets the current iteration finish; what it schedules runs after the next run_forever", function()
    with_loop(function(loop)
      local log = {}
      loop:call_soon(function()
        log[#log + 1] = "a"
        loop:call_soon(function() log[#log + 1] = "c" end)
        loop:stop()
      end)
      loop:call_soon(function() log[#log + 1] = "b" end)
      loop:run_forever()
      assert.same({ "a", "b" }, log)
      loop:call_soon(loop.stop, loop)
      loop:run_forever()
      assert.same({ "a", "b", "c" }, log)
    end)
  end)

  it("callbacks run in FIFO order when the ready queue grows while its head is mid-ring", function()
    with_loop(function(loop)
      local log, n = {}, 0
      -- 40 run first; each schedules 5 (200 queued while the head has moved on: the ring of 64
      -- wraps, then grows in place under the running batch)
      for _ = 1, 40 do
        loop:call_soon(function()
          for _ = 1, 5 do
            n = n + 1
            local k = n
            loop:call_soon(function() log[#log + 1] = k end)
          end
        end)
      end
      run_once(loop)
      run_once(loop)
      assert.equal(200, #log)
      for i = 1, 200 do assert.equal(i, log[i]) end
    end)
  end)

  it("stop before run_forever runs one iteration, then returns", function()
    with_loop(function(loop)
      local log = {}
      loop:call_soon(function()
        log[#log + 1] = 1
        loop:call_soon(function() log[#log + 1] = 2 end)
      end)
      loop:stop()
      loop:run_forever()
      assert.same({ 1 }, log)
      run_once(loop)
      assert.same({ 1, 2 }, log)
    end)
  end)

  it("run_forever on a running loop is an error", function()
    with_loop(function(loop)
      local ok, err
      loop:call_soon(function() ok, err = pcall(loop.run_forever, loop) end)
      run_once(loop)
      assert.is_false(ok)
      assert.matches("already running", tostring(err))
    end)
  end)

  it("run_forever waits for timers when nothing else is ready", function()
    with_loop(function(loop)
      local fired = false
      loop:call_later(0.01, function() fired = true; loop:stop() end)
      loop:run_forever()
      assert.is_true(fired)
    end)
  end)

  it("a KeyboardInterrupt raised by a callback makes run_forever raise it", function()
    with_loop(function(loop)
      loop:call_soon(function() error(aio.KeyboardInterrupt("from callback")) end)
      local ok, err = pcall(loop.run_forever, loop)
      assert.is_false(ok)
      assert.is_true(aio.iserror(err, aio.KeyboardInterrupt))
      assert.is_false(loop:is_running())
    end)
  end)
end)

describe("run_until_complete", function()
  it("returns all the results of a function", function()
    with_loop(function(loop)
      local r = table.pack(loop:run_until_complete(function(a, b) return a, nil, b end, 1, 3))
      assert.same({ n = 3, 1, nil, 3 }, r)
    end)
  end)

  it("returns the results of a coroutine object, a task and a future", function()
    with_loop(function(loop)
      assert.same({ "x", "y" }, { loop:run_until_complete(aio.coro(function(a) return a, "y" end, "x")) })
      local t = loop:create_task(function() return 7 end)
      assert.equal(7, loop:run_until_complete(t))
      local f = loop:create_future()
      loop:call_soon(function() f:set_result("a", "b") end)
      assert.same({ "a", "b" }, { loop:run_until_complete(f) })
    end)
  end)

  it("raises the awaitable's error object unchanged", function()
    with_loop(function(loop)
      local e = aio.TimeoutError("too slow")
      local ok, err = pcall(loop.run_until_complete, loop, function() error(e) end)
      assert.is_false(ok)
      assert.is_true(rawequal(e, err))
    end)
  end)

  it("raises a plain string error unchanged", function()
    with_loop(function(loop)
      local ok, err = pcall(loop.run_until_complete, loop, function() error("plain", 0) end)
      assert.is_false(ok)
      assert.equal("plain", err)
      ok, err = pcall(loop.run_until_complete, loop, function() error("with position") end)
      assert.is_false(ok)
      assert.equal("string", type(err))
      assert.matches("loop_spec%.lua:%d+: with position$", err)
    end)
  end)

  it("raises a non-string, non-table error value unchanged", function()
    with_loop(function(loop)
      local ok, err = pcall(loop.run_until_complete, loop, function() error(42) end)
      assert.is_false(ok)
      assert.equal(42, err)
    end)
  end)

  it("raises CancelledError when the task is cancelled", function()
    with_loop(function(loop)
      local t = loop:create_task(function() aio.sleep(10) end)
      loop:call_soon(function() t:cancel("stop it") end)
      local ok, err = pcall(loop.run_until_complete, loop, t)
      assert.is_false(ok)
      assert.is_true(aio.iserror(err, aio.CancelledError))
      assert.equal("stop it", err.message)
    end)
  end)

  it("on a running loop is an error", function()
    with_loop(function(loop)
      local ok, err
      loop:call_soon(function() ok, err = pcall(loop.run_until_complete, loop, function() end) end)
      run_once(loop)
      assert.is_false(ok)
      assert.matches("already running", tostring(err))
    end)
  end)

  it("on a running loop is an error also from inside a task", function()
    with_loop(function(loop)
      local ok, err = loop:run_until_complete(function()
        return pcall(loop.run_until_complete, loop, aio.sleep, 0)
      end)
      assert.is_false(ok)
      assert.matches("already running", tostring(err))
    end)
  end)

  it("on a closed loop is an error", function()
    local loop = aio.new_event_loop()
    loop:close()
    local ok, err = pcall(loop.run_until_complete, loop, function() end)
    assert.is_false(ok)
    assert.matches("closed", tostring(err))
  end)

  it("with a future of another loop is an error", function()
    with_loop(function(loop)
      local other = aio.new_event_loop()
      local f = other:create_future()
      assert.has_error(function() loop:run_until_complete(f) end)
      other:close()
    end)
  end)

  it("is an error when the loop stops before the future is done", function()
    with_loop(function(loop)
      local f = loop:create_future()
      loop:call_soon(loop.stop, loop)
      local ok, err = pcall(loop.run_until_complete, loop, f)
      assert.is_false(ok)
      assert.matches("stopped before Future completed", tostring(err))
    end)
  end)

  it("leaves the loop reusable after an error", function()
    with_loop(function(loop)
      pcall(loop.run_until_complete, loop, function() error("x") end)
      assert.is_false(loop:is_running())
      assert.equal(5, loop:run_until_complete(function() return 5 end))
    end)
  end)
end)

describe("close", function()
  it("on a running loop is an error", function()
    with_loop(function(loop)
      local ok, err
      loop:call_soon(function() ok, err = pcall(loop.close, loop) end)
      run_once(loop)
      assert.is_false(ok)
      assert.matches("running", tostring(err))
      assert.is_false(loop:is_closed())
    end)
  end)

  it("closes the loop; closing twice is harmless", function()
    local loop = aio.new_event_loop()
    loop:close()
    assert.is_true(loop:is_closed())
    loop:close()
    assert.is_true(loop:is_closed())
  end)

  it("call_soon, call_later, call_at and create_future after close are errors", function()
    local loop = aio.new_event_loop()
    loop:close()
    local f = function() end
    for _, call in ipairs {
      function() loop:call_soon(f) end,
      function() loop:call_soon_threadsafe(f) end,
      function() loop:call_later(0, f) end,
      function() loop:call_at(0, f) end,
      function() loop:create_future() end,
      function() loop:create_task(f) end,
      function() loop:run_forever() end,
    } do
      local ok, err = pcall(call)
      assert.is_false(ok)
      assert.matches("closed", tostring(err))
    end
  end)

  it("drops queued callbacks and timers without running them", function()
    local loop = aio.new_event_loop()
    local ran = false
    loop:call_soon(function() ran = true end)
    local th = loop:call_later(0, function() ran = true end)
    loop:close()
    assert.is_false(ran)
    th:cancel() -- cancelling a handle of a closed loop is harmless
  end)

  it("reports a task that is still pending", function()
    local loop = aio.new_event_loop()
    local got = recording(loop)
    local t = loop:create_task(function() aio.sleep(10) end)
    run_once(loop)
    loop:close()
    assert.equal(1, #got)
    assert.matches("Task was destroyed but it is pending", got[1].message)
    assert.equal(t, got[1].task)
  end)
end)

describe("call_soon", function()
  it("runs callbacks in FIFO order with their arguments", function()
    with_loop(function(loop)
      local log = {}
      for i = 1, 200 do
        loop:call_soon(function(a, b) log[#log + 1] = a .. b end, i, "x")
      end
      run_once(loop)
      assert.equal(200, #log)
      for i = 1, 200 do assert.equal(i .. "x", log[i]) end
    end)
  end)

  it("passes nil arguments through", function()
    with_loop(function(loop)
      local got
      loop:call_soon(function(...) got = table.pack(...) end, nil, 2, nil)
      run_once(loop)
      assert.same({ n = 3, nil, 2, nil }, got)
    end)
  end)

  it("accepts a callable table", function()
    with_loop(function(loop)
      local got
      local obj = setmetatable({}, { __call = function(self, x) got = x end })
      loop:call_soon(obj, "called")
      run_once(loop)
      assert.equal("called", got)
    end)
  end)

  it("needs a function", function()
    with_loop(function(loop) assert.has_error(function() loop:call_soon() end) end)
  end)

  it("returns a Handle that can be cancelled before it runs", function()
    with_loop(function(loop)
      local ran = false
      local h = loop:call_soon(function() ran = true end)
      assert.is_false(h:cancelled())
      assert.matches("^<Handle", tostring(h))
      h:cancel()
      assert.is_true(h:cancelled())
      h:cancel() -- twice is harmless
      run_once(loop)
      assert.is_false(ran)
    end)
  end)

  it("a callback can cancel one queued after it in the same iteration", function()
    with_loop(function(loop)
      local log, h2 = {}, nil
      loop:call_soon(function() log[#log + 1] = 1; h2:cancel() end)
      h2 = loop:call_soon(function() log[#log + 1] = 2 end)
      loop:call_soon(function() log[#log + 1] = 3 end)
      run_once(loop)
      assert.same({ 1, 3 }, log)
    end)
  end)
end)

describe("argument errors of the loop's C methods", function()
  local raises = H.raises_text

  it("name the method when it is called through pcall (no name in the calling code)", function()
    with_loop(function(loop)
      raises("bad argument #2 to 'aloop.Loop.call_later' (number expected, got string)",
             loop.call_later, loop, "x")
      raises("bad argument #1 to 'aloop.Loop.call_soon' (aloop loop expected, got number)",
             loop.call_soon, 42)
      raises("bad argument #3 to 'aloop.Loop.call_at' (function expected, got no value)",
             loop.call_at, loop, 1)
      raises("bad argument #2 to 'aloop.Loop.add_reader' (file descriptor", loop.add_reader, loop, "x")
      raises("bad argument #2 to 'aloop.Loop.set_exception_handler' (a callable or nil expected)",
             loop.set_exception_handler, loop, 42)
    end)
  end)

  it("name the method when it is called normally (self is not counted)", function()
    with_loop(function(loop)
      raises("bad argument #1 to 'call_later' (number expected, got string)",
             function() loop:call_later("x") end)
      raises("bad argument #2 to 'call_at' (function expected, got no value)",
             function() loop:call_at(1) end)
      raises("bad argument #1 to 'add_reader' (file descriptor", function() loop:add_reader("x") end)
      raises("bad argument #1 to 'set_exception_handler' (a callable or nil expected)",
             function() loop:set_exception_handler(42) end)
      raises("bad argument #1 to 'call_soon' (aloop loop expected, got table)",
             function() loop.call_soon({}, print) end)
    end)
  end)

  it("leave the loop running and usable", function()
    with_loop(function(loop)
      local got = {}
      loop:call_soon(function()
        got[1] = pcall(loop.call_later, loop, "x")
        got[2] = pcall(loop.call_soon, loop)
      end)
      loop:call_soon(function() got[3] = "ran" end)
      run_once(loop)
      assert.same({ false, false, "ran" }, got)
      assert.is_false(loop:is_closed())
    end)
  end)
end)

describe("call_soon_threadsafe", function()
  it("schedules like call_soon (FIFO with call_soon, args, a Handle)", function()
    with_loop(function(loop)
      local log = {}
      loop:call_soon(function(x) log[#log + 1] = x end, "a")
      local h = loop:call_soon_threadsafe(function(x, y) log[#log + 1] = x .. y end, "b", "c")
      loop:call_soon(function(x) log[#log + 1] = x end, "d")
      assert.is_false(h:cancelled())
      run_once(loop)
      assert.same({ "a", "bc", "d" }, log)
    end)
  end)

  it("returns a Handle that can be cancelled", function()
    with_loop(function(loop)
      local ran = false
      local h = loop:call_soon_threadsafe(function() ran = true end)
      h:cancel()
      run_once(loop)
      assert.is_false(ran)
    end)
  end)

  it("from a callback of a running loop wakes it without other events", function()
    with_loop(function(loop)
      local done = false
      loop:call_soon(function()
        loop:call_soon_threadsafe(function() done = true; loop:stop() end)
      end)
      loop:run_forever()
      assert.is_true(done)
    end)
  end)
end)

describe("call_later and call_at", function()
  it("run in deadline order, not in scheduling order", function()
    with_loop(function(loop)
      local log = {}
      local t0 = loop:time()
      loop:call_at(t0 + 0.03, function() log[#log + 1] = "c"; loop:stop() end)
      loop:call_at(t0 + 0.01, function() log[#log + 1] = "a" end)
      loop:call_later(0.02, function() log[#log + 1] = "b" end)
      loop:run_forever()
      assert.same({ "a", "b", "c" }, log)
    end)
  end)

  it("run equal deadlines in scheduling order", function()
    with_loop(function(loop)
      local log = {}
      local when = loop:time() + 0.005
      for i = 1, 50 do loop:call_at(when, function() log[#log + 1] = i end) end
      loop:call_at(when, loop.stop, loop)
      loop:run_forever()
      assert.equal(50, #log)
      for i = 1, 50 do assert.equal(i, log[i]) end
    end)
  end)

  it("never run before their deadline", function()
    with_loop(function(loop)
      local when = loop:time() + 0.02
      local ran_at
      loop:call_at(when, function() ran_at = loop:time(); loop:stop() end)
      loop:run_forever()
      assert.is_true(ran_at >= when)
    end)
  end)

  it("pass their arguments", function()
    with_loop(function(loop)
      local got
      loop:call_later(0, function(...) got = table.pack(...); loop:stop() end, 1, nil, "three")
      loop:run_forever()
      assert.same({ n = 3, 1, nil, "three" }, got)
    end)
  end)

  it("a negative delay is in the past: the callback runs at once, before later timers", function()
    with_loop(function(loop)
      local log = {}
      local before = loop:time()
      local h = loop:call_later(-10, function() log[#log + 1] = "now" end)
      assert.is_true(h:when() <= before - 9) -- as asyncio: when() is now - 10
      loop:call_later(0.01, function() log[#log + 1] = "later"; loop:stop() end)
      loop:run_forever()
      assert.same({ "now", "later" }, log)
    end)
  end)

  it("call_at with a deadline in the past runs at once", function()
    with_loop(function(loop)
      local ran = false
      loop:call_at(loop:time() - 100, function() ran = true; loop:stop() end)
      loop:run_forever()
      assert.is_true(ran)
    end)
  end)

  it("call_later with a delay that is not a number is an error", function()
    with_loop(function(loop)
      local f = function() end
      for _, bad in ipairs { "soon", {}, true, f } do
        local ok, err = pcall(loop.call_later, loop, bad, f)
        assert.is_false(ok)
        assert.matches("number expected", tostring(err))
      end
      assert.has_error(function() loop:call_later(nil, f) end)
      assert.has_error(function() loop:call_later(0 / 0, f) end)
    end)
  end)

  it("call_at with a `when` that is not a number is an error", function()
    with_loop(function(loop)
      local ok, err = pcall(loop.call_at, loop, "later", function() end)
      assert.is_false(ok)
      assert.matches("number expected", tostring(err))
    end)
  end)

  it("call_later and call_at need a function", function()
    with_loop(function(loop)
      assert.has_error(function() loop:call_later(1) end)
      assert.has_error(function() loop:call_at(1) end)
    end)
  end)

  it("TimerHandle:when() is the deadline on the loop clock", function()
    with_loop(function(loop)
      local when = loop:time() + 5
      assert.equal(when, loop:call_at(when, function() end):when())
      local before = loop:time()
      local h = loop:call_later(2, function() end)
      local after = loop:time()
      assert.is_true(h:when() >= before + 2 and h:when() <= after + 2)
      assert.matches("^<TimerHandle", tostring(h))
    end)
  end)

  it("a cancelled TimerHandle never runs", function()
    with_loop(function(loop)
      local log = {}
      local h = loop:call_later(0, function() log[#log + 1] = "cancelled one" end)
      loop:call_later(0.005, function() log[#log + 1] = "kept"; loop:stop() end)
      assert.is_false(h:cancelled())
      h:cancel()
      assert.is_true(h:cancelled())
      loop:run_forever()
      assert.same({ "kept" }, log)
    end)
  end)

  it("cancelling a timer from an earlier timer in the same iteration stops it", function()
    with_loop(function(loop)
      local log, h2 = {}, nil
      local when = loop:time()
      loop:call_at(when, function() log[#log + 1] = 1; h2:cancel() end)
      h2 = loop:call_at(when, function() log[#log + 1] = 2 end)
      loop:call_at(when, function() log[#log + 1] = 3; loop:stop() end)
      loop:run_forever()
      assert.same({ 1, 3 }, log)
    end)
  end)

  it("many timers (cancelled ones among them) keep their order", function()
    with_loop(function(loop)
      local log, handles = {}, {}
      local t0 = loop:time()
      for i = 1, 300 do
        -- deadlines scrambled: i * 7 mod 300
        local k = (i * 7) % 300
        handles[i] = loop:call_at(t0 + k * 1e-5, function() log[#log + 1] = k end)
      end
      for i = 1, 300, 3 do handles[i]:cancel() end
      loop:call_at(t0 + 0.01, loop.stop, loop)
      loop:run_forever()
      assert.equal(200, #log)
      for i = 2, #log do assert.is_true(log[i - 1] < log[i]) end
    end)
  end)
end)

describe("the exception handler", function()
  it("is nil by default; set and get it; nil resets it", function()
    with_loop(function(loop)
      assert.is_nil(loop:get_exception_handler())
      local h = function() end
      loop:set_exception_handler(h)
      assert.equal(h, loop:get_exception_handler())
      loop:set_exception_handler(nil)
      assert.is_nil(loop:get_exception_handler())
    end)
  end)

  it("accepts a callable table, and rejects what is not callable", function()
    with_loop(function(loop)
      local obj = setmetatable({}, { __call = function() end })
      loop:set_exception_handler(obj)
      assert.equal(obj, loop:get_exception_handler())
      assert.has_error(function() loop:set_exception_handler(42) end)
      assert.has_error(function() loop:set_exception_handler({}) end)
    end)
  end)

  it("call_exception_handler calls the handler with the loop and the context", function()
    with_loop(function(loop)
      local got = recording(loop)
      local ctx = { message = "hello" }
      loop:call_exception_handler(ctx)
      assert.equal(1, #got)
      assert.equal(ctx, got[1])
    end)
  end)

  it("call_exception_handler without a handler uses the default one (stderr)", function()
    local out, err, code = H.aloop_capture([[-e 'local aio = require "aloop"
      local loop = aio.new_event_loop()
      loop:call_exception_handler{message = "reported via default", exception = "the error"}
      print("after")']])
    assert.equal(0, code, err)
    assert.equal("after\n", out)
    assert.matches("reported via default", err)
    assert.matches("exception: the error", err)
  end)

  it("default_exception_handler writes message, exception and traceback to stderr", function()
    local out, err, code = H.aloop_capture([[-e 'local aio = require "aloop"
      local loop = aio.new_event_loop()
      loop:set_exception_handler(function() print("custom handler called") end)
      loop:default_exception_handler{message = "the message", exception = aio.TimeoutError("te"),
        traceback = "TRACEBACK-TEXT"}
      loop:default_exception_handler{message = "second", exception = "plain", traceback = "TB2"}']])
    assert.equal(0, code, err)
    assert.equal("", out) -- the custom handler is not involved
    assert.matches("the message", err)
    assert.matches("TimeoutError: te", err)
    assert.matches("stack traceback", err) -- the error object's own traceback
    assert.matches("second\nexception: plain\nTB2", err)
  end)

  it("default_exception_handler copes with an exception whose __tostring raises", function()
    local _, err, code = H.aloop_capture([[-e 'local aio = require "aloop"
      local loop = aio.new_event_loop()
      local bad = setmetatable({}, {__tostring = function() error("no") end})
      loop:default_exception_handler{message = "weird", exception = bad}
      io.stderr:write("survived\n")']])
    assert.equal(0, code, err)
    assert.matches("weird", err)
    assert.matches("tostring failed", err)
    assert.matches("survived", err)
  end)

  it("an error raised by a callback goes to the handler with message, exception, handle and traceback", function()
    with_loop(function(loop)
      local got = recording(loop)
      local h = loop:call_soon(function() error("callback failed") end)
      run_once(loop)
      assert.equal(1, #got)
      local ctx = got[1]
      assert.matches("^Exception in callback", ctx.message)
      assert.matches("loop_spec%.lua:%d+: callback failed$", ctx.exception)
      assert.equal(h, ctx.handle)
      assert.equal("string", type(ctx.traceback))
      assert.matches("stack traceback", ctx.traceback)
      assert.matches("loop_spec%.lua", ctx.traceback)
    end)
  end)

  it("the loop keeps running after a callback error", function()
    with_loop(function(loop)
      local got = recording(loop)
      local log = {}
      loop:call_soon(function() error("first") end)
      loop:call_soon(function() log[#log + 1] = "second" end)
      loop:call_later(0.001, function() error("timer") end)
      loop:call_later(0.002, function() log[#log + 1] = "third"; loop:stop() end)
      loop:run_forever()
      assert.same({ "second", "third" }, log)
      assert.equal(2, #got)
      assert.matches("first", got[1].exception)
      assert.matches("timer", got[2].exception)
    end)
  end)

  it("non-string error objects are reported as they are", function()
    with_loop(function(loop)
      local got = recording(loop)
      local tbl = { code = 42 }
      local weird = setmetatable({}, { __tostring = function() error("tostring broke") end })
      local values = { tbl, 42, true, weird, aio.QueueFull("full") }
      for _, v in ipairs(values) do loop:call_soon(function() error(v) end) end
      run_once(loop)
      assert.equal(#values, #got)
      for i, v in ipairs(values) do
        assert.is_true(rawequal(v, got[i].exception), "value " .. i)
        assert.equal("string", type(got[i].message))
        assert.equal("string", type(got[i].traceback))
      end
    end)
  end)

  it("a failing callable whose __tostring also raises is reported and the loop goes on", function()
    with_loop(function(loop)
      local got = recording(loop)
      local ran = false
      local cb = setmetatable({}, {
        __call = function() error("in cb") end,
        __tostring = function() error("tostring broke") end,
      })
      loop:call_soon(cb)
      loop:call_soon(function() ran = true end)
      run_once(loop)
      assert.equal(1, #got)
      assert.matches("^Exception in callback .*tostring failed", got[1].message)
      assert.matches("in cb$", got[1].exception)
      assert.is_true(ran)
    end)
  end)

  it("error(nil) in a callback is reported", function()
    with_loop(function(loop)
      local got = recording(loop)
      local ran = false
      loop:call_soon(function() error(nil) end)
      loop:call_soon(function() ran = true end)
      run_once(loop)
      assert.equal(1, #got)
      assert.matches("^Exception in callback", got[1].message)
      assert.is_true(ran)
    end)
  end)

  it("a handler that raises is reported through the default handler and the loop continues", function()
    local out, err, code = H.aloop_script([[
      local aio = require "aloop"
      local loop = aio.new_event_loop()
      loop:set_exception_handler(function(l, ctx) error("handler broke on: " .. ctx.message) end)
      loop:call_soon(function() error("cb failed") end)
      loop:call_soon(function() print("still running") end)
      loop:call_soon(function() error({}) end)
      loop:call_soon(loop.stop, loop)
      loop:run_forever()
      print("done")
    ]])
    assert.equal(0, code, err)
    assert.equal("still running\ndone\n", out)
    assert.matches("Unhandled error in exception handler", err)
    assert.matches("handler broke on: Exception in callback", err)
    local _, n = err:gsub("Unhandled error in exception handler", "")
    assert.equal(2, n)
  end)

  it("a handler that raises a non-string object is reported and the loop continues", function()
    local out, err, code = H.aloop_script([[
      local aio = require "aloop"
      local loop = aio.new_event_loop()
      loop:set_exception_handler(function() error(setmetatable({}, {__tostring = function() error("x") end})) end)
      loop:call_soon(function() error("cb failed") end)
      loop:call_soon(function() print("still running") end)
      loop:call_soon(loop.stop, loop)
      loop:run_forever()
      print("done")
    ]])
    assert.equal(0, code, err)
    assert.equal("still running\ndone\n", out)
    assert.matches("Unhandled error in exception handler", err)
  end)

  it("a handler that raises KeyboardInterrupt makes run_forever raise it (as asyncio re-raises it)", function()
    with_loop(function(loop)
      loop:set_exception_handler(function() error(aio.KeyboardInterrupt("from handler")) end)
      local after = false
      loop:call_soon(function() error("cb failed") end)
      loop:call_soon(function() after = true end)
      local ok, err = pcall(loop.run_forever, loop)
      assert.is_false(ok)
      assert.is_true(aio.iserror(err, aio.KeyboardInterrupt))
      assert.is_false(loop:is_running())
    end)
  end)

  it("call_exception_handler on a loop that is not running never raises, and the loop stays usable", function()
    local out, err, code = H.aloop_script([[
      local aio = require "aloop"
      local loop = aio.new_event_loop()
      loop:set_exception_handler(function() error(aio.KeyboardInterrupt()) end)
      print(pcall(loop.call_exception_handler, loop, { message = "x" }))
      loop:set_exception_handler(nil)
      print(loop:run_until_complete(function() return aio.sleep(0, "usable") end))
    ]])
    assert.equal(0, code, err)
    assert.equal("true\nusable\n", out)
    assert.matches("Unhandled error in exception handler", err)
  end)

  it("an error in a done callback is reported and the loop continues", function()
    with_loop(function(loop)
      local got = recording(loop)
      local f = loop:create_future()
      local log = {}
      f:add_done_callback(function() error("done callback failed") end)
      f:add_done_callback(function() log[#log + 1] = "next callback" end)
      loop:call_soon(function() f:set_result(1) end)
      loop:call_soon(function() loop:call_soon(loop.stop, loop) end)
      loop:run_forever()
      assert.same({ "next callback" }, log)
      assert.equal(1, #got)
      assert.matches("done callback failed", got[1].exception)
      assert.matches("stack traceback", got[1].traceback)
    end)
  end)

  it("an error in a __gc metamethod does not stop the loop", function()
    with_loop(function(loop)
      local got = recording(loop)
      local collected, after = false, false
      loop:call_soon(function()
        setmetatable({}, { __gc = function() collected = true; error("gc failed") end })
        collectgarbage()
        collectgarbage()
      end)
      loop:call_soon(function() after = true end)
      run_once(loop)
      assert.is_true(collected)
      assert.is_true(after)
      assert.is_false(loop:is_running())
      assert.equal(0, #got)
    end)
  end)

  it("an error in a __gc metamethod inside a task does not stop the task or the loop", function()
    with_loop(function(loop)
      local collected = false
      local r = loop:run_until_complete(function()
        setmetatable({}, { __gc = function() collected = true; error("gc failed") end })
        collectgarbage()
        collectgarbage()
        aio.sleep(0)
        return "task finished"
      end)
      assert.is_true(collected)
      assert.equal("task finished", r)
    end)
  end)

  it("a __gc error in the interpreter is at most a warning; the script goes on", function()
    local out, err, code = H.aloop_script([[
      local aio = require "aloop"
      local loop = aio.new_event_loop()
      loop:call_soon(function()
        setmetatable({}, { __gc = function() error("gc failed") end })
        collectgarbage(); collectgarbage()
      end)
      loop:call_soon(function() print("still running") end)
      loop:call_soon(loop.stop, loop)
      loop:run_forever()
      print("done")
    ]])
    assert.equal(0, code, err)
    assert.equal("still running\ndone\n", out)
  end)
end)
