-- Lesson: a task may catch the CancelledError raised at its suspension point and go on (API.md
-- §3). A typical broken version remembered the cancel request and either re-raised it at the next
-- suspension point, or marked the task cancelled when it later returned normally, so a task that
-- handled its cancellation (e.g. to finish a write) could not return a result.
local aio = require "aloop"
local H = require "spec.helper"

describe("regression: a task that catches CancelledError", function()
  it("can suspend again and return normally, and is not cancelled", H.async(function()
    local t = aio.create_task(function()
      local ok, err = pcall(aio.sleep, 10)
      assert(not ok and aio.iserror(err, aio.CancelledError))
      aio.sleep(0)          -- no second CancelledError here
      aio.sleep(0.001)
      return "handled", 2
    end)
    aio.sleep(0)
    assert.is_true(t:cancel())
    assert.same({ "handled", 2 }, { t:await() })
    assert.is_false(t:cancelled())
    assert.is_nil(t:exception())
  end))

  it("when it awaited another task, that one is cancelled and it goes on", H.async(function()
    local inner = aio.create_task(aio.sleep, 10)
    local outer = aio.create_task(function()
      local ok = pcall(aio.await, inner)
      return ok and "no" or "went on"
    end)
    aio.sleep(0)
    outer:cancel()
    assert.equal("went on", outer:await())
    assert.is_true(inner:cancelled())
  end))
end)
