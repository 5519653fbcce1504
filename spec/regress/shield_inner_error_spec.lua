-- Lesson: errors are never silently dropped (API.md §4), shield included. Once the task
-- awaiting aio.shield(inner) was cancelled (a wait_for timeout around it, say), a broken
-- version marked the inner task's later error as retrieved, so it reached nobody. As asyncio
-- does, the shield now lets go of the inner task when its outer future is cancelled: an error
-- the inner task ends with is reported ("Task exception was never retrieved") unless someone
-- retrieves it, and a result or error someone awaits on the inner task still arrives.
local aio = require "aloop"
local H = require "spec.helper"

describe("regression: shield after the outer cancel", function()
  it("reports the inner task's later error", H.async(function()
    local loop = aio.get_running_loop()
    local reports = {}
    loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
    local done = aio.Event()
    do
      local inner = aio.create_task(function()
        done:wait()
        error("inner failed")
      end)
      local ok, err = pcall(aio.wait_for, aio.coro(aio.shield, inner), 0.001)
      assert.is_false(ok)
      assert.is_true(aio.iserror(err, aio.TimeoutError))
      done:set()
      aio.sleep(0)
      assert.is_true(inner:done())
    end
    collectgarbage()
    collectgarbage()
    aio.sleep(0)
    assert.equal(1, #reports)
    assert.equal("Task exception was never retrieved", reports[1].message)
    assert.matches("inner failed", tostring(reports[1].exception))
  end))

  it("still lets the inner task's own awaiter have its result", H.async(function()
    local inner = aio.create_task(function()
      aio.sleep(0.02)
      return "kept"
    end)
    assert.is_false(pcall(aio.wait_for, aio.coro(aio.shield, inner), 0.001))
    assert.equal("kept", aio.await(inner))
  end))
end)
