-- aio.thread (lua/aloop/threads/thread.lua, src/threads/remote.c): a loop running in another OS
-- thread with its own Lua state, fed with call_soon_threadsafe and run_coroutine_threadsafe;
-- stopping, joining, and the errors for what cannot cross or a loop that has stopped. Ordering is
-- shown with futures inside the remote loop, never with sleeps.
local aio = require "aloop"
local H = require "spec.helper"

describe("aio.thread.start_loop", function()
  local remote
  before_each(function() remote = aio.thread.start_loop() end)
  after_each(function()
    remote:stop()
    remote:join()
  end)

  it("returns a loop that is running in another thread", function()
    assert.is_true(remote:is_running())
  end)

  it("call_soon_threadsafe runs fn(...) on the remote loop, in posting order", function()
    remote:call_soon_threadsafe(function() SEEN = {} end)
    for i = 1, 3 do remote:call_soon_threadsafe(function(x) SEEN[#SEEN + 1] = x end, i) end
    local seen = aio.run_coroutine_threadsafe(function() return SEEN end, remote):result()
    assert.same({ 1, 2, 3 }, seen)
  end)

  it("the remote state is its own: globals of this state are not there", function()
    SOME_GLOBAL = "here"
    assert.is_nil(aio.run_coroutine_threadsafe(function() return SOME_GLOBAL end, remote):result())
    SOME_GLOBAL = nil
  end)

  it("run_coroutine_threadsafe returns a concurrent future of the coroutine's results", function()
    local f = aio.run_coroutine_threadsafe(aio.coro(function(a, b)
      require("aloop").sleep(0)
      return a + b, "done"
    end, 2, 3), remote)
    local x, y = f:result()
    assert.equal(5, x)
    assert.equal("done", y)
  end)

  it("coroutines on the remote loop run concurrently", function()
    remote:call_soon_threadsafe(function() SHARED = require("aloop").get_event_loop():create_future() end)
    local waiter = aio.run_coroutine_threadsafe(function() return "got " .. SHARED:await() end, remote)
    local setter = aio.run_coroutine_threadsafe(function() SHARED:set_result("it") end, remote)
    assert.equal("got it", waiter:result())
    setter:result()
  end)

  it("an error in the coroutine is raised by result()", function()
    local f = aio.run_coroutine_threadsafe(function() error("remote failure") end, remote)
    assert.error_matches(function() f:result() end, "remote failure")
  end)

  it("cancel() of the future cancels the coroutine's task on the remote loop", function()
    local f = aio.run_coroutine_threadsafe(function()
      local aio = require "aloop"
      STARTED, LOG = true, {}
      local ok, err = pcall(aio.sleep, 60)
      LOG[1] = aio.iserror(err, aio.CancelledError) and "cancelled there" or tostring(err)
      error(err, 0)
    end, remote)
    assert.is_true(aio.run_coroutine_threadsafe(function() return STARTED end, remote):result())
    assert.is_true(f:running())
    assert.is_true(f:cancel())
    assert.is_true(f:cancelled())
    assert.error_matches(function() f:result() end, "cancelled")
    assert.equal("cancelled there", aio.run_coroutine_threadsafe(function() return LOG[1] end, remote):result())
  end)

  it("result() in a task suspends only that task", function()
    remote:call_soon_threadsafe(function() GATE = require("aloop").get_event_loop():create_future() end)
    local got = H.run(function()
      local f = aio.run_coroutine_threadsafe(function() return GATE:await() end, remote)
      aio.create_task(function()
        aio.run_coroutine_threadsafe(aio.coro(function(v) GATE:set_result(v) end, "opened"), remote)
      end)
      return f:result()
    end)
    assert.equal("opened", got)
  end)

  it("refuses a function with upvalues, naming it", function()
    local x = 1
    assert.error_matches(function()
      aio.run_coroutine_threadsafe(function() return x end, remote)
    end, "uses the upvalue 'x'")
    assert.error_matches(function()
      remote:call_soon_threadsafe(function() end, coroutine.create(print))
    end, "argument 1 is a thread")
  end)

  it("refuses a loop that is not a remote one", function()
    local loop = aio.new_event_loop()
    assert.error_matches(function() aio.run_coroutine_threadsafe(function() end, loop) end,
      "a loop from aio.thread.start_loop%(%) expected")
    loop:close()
  end)
end)

describe("remote loops under load", function()
  it("four remote loops each run 200 coroutines posted from this thread", function()
    local remotes, futs = {}, {}
    for r = 1, 4 do remotes[r] = aio.thread.start_loop() end
    for i = 1, 800 do
      local r = remotes[(i % 4) + 1]
      futs[i] = aio.run_coroutine_threadsafe(aio.coro(function(x)
        require("aloop").sleep(0)
        return x + 1
      end, i), r)
    end
    local sum = 0
    for i = 1, 800 do sum = sum + futs[i]:result() end
    for _, r in ipairs(remotes) do
      r:stop()
      r:join()
    end
    assert.equal(800 * 801 / 2 + 800, sum)
  end)

  it("a call that raises is reported by the remote loop's exception handler; the loop goes on", function()
    local out, err, code = H.capture(H.q(H.bin) .. [[ -e '
      local aio = require "aloop"
      local r = aio.thread.start_loop()
      r:call_soon_threadsafe(function() error("posted call failed") end)
      print(aio.run_coroutine_threadsafe(function() return "still running" end, r):result())
      r:stop()
      r:join()']])
    assert.equal(0, code)
    assert.equal("still running\n", out)
    assert.matches("Exception in a thread%-safe call", err)
    assert.matches("posted call failed", err)
  end)
end)

describe("a remote loop that stops", function()
  it("stop() and join() end its thread; is_running() is then false", function()
    local remote = aio.thread.start_loop()
    remote:stop()
    remote:join()
    assert.is_false(remote:is_running())
  end)

  it("refuses new work with InvalidStateError", function()
    local remote = aio.thread.start_loop()
    remote:stop()
    remote:join()
    local ok, err = pcall(aio.run_coroutine_threadsafe, function() end, remote)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.InvalidStateError))
    assert.matches("the loop in the other thread has stopped", err.message)
    assert.error_matches(function() remote:call_soon_threadsafe(function() end) end, "has stopped")
  end)

  it("fails the futures of coroutines still running with CancelledError", function()
    local remote = aio.thread.start_loop()
    local f = aio.run_coroutine_threadsafe(function()
      require("aloop").get_event_loop():create_future():await()
    end, remote)
    local started = aio.run_coroutine_threadsafe(function() end, remote)
    started:result()
    remote:stop()
    remote:join()
    local ok, err = pcall(f.result, f)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.CancelledError))
    assert.matches("stopped before the coroutine finished", err.message)
  end)

  it("join() in a task suspends it until the thread ends", function()
    local remote = aio.thread.start_loop()
    local running = H.run(function()
      remote:stop()
      remote:join()
      return remote:is_running()
    end)
    assert.is_false(running)
  end)

  it("is to-be-closed: leaving the scope stops the loop and joins its thread", function()
    local outer
    do
      local remote <close> = aio.thread.start_loop()
      outer = remote
      assert.is_true(remote:is_running())
    end
    assert.is_false(outer:is_running())
  end)
end)
