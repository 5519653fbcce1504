-- Lesson: gather(..., {return_exceptions = true}) turns the children's errors, including their
-- CancelledErrors, into results. A typical broken version applied that to the cancellation of the
-- gather itself too: cancelling the task that awaited the gather cancelled the children, and then
-- the gather returned {CancelledError, ...} as a normal result, so the cancelled caller went on
-- running as if nothing happened. The cancellation of the gather must propagate regardless.
local aio = require "aloop"
local H = require "spec.helper"

describe("regression: gather with return_exceptions", function()
  it("does not swallow the cancellation of the caller", H.async(function()
    local children = { aio.create_task(aio.sleep, 10), aio.create_task(aio.sleep, 10) }
    local went_on = false
    local caller = aio.create_task(function()
      aio.gather(children, { return_exceptions = true })
      went_on = true
    end)
    aio.sleep(0)
    caller:cancel()
    local ok, err = pcall(aio.await, caller)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.CancelledError))
    assert.is_false(went_on)
    assert.is_true(caller:cancelled())
    assert.is_true(children[1]:cancelled())
    assert.is_true(children[2]:cancelled())
  end))

  it("still returns a child's own cancellation as a result", H.async(function()
    local child = aio.create_task(aio.sleep, 10)
    local other = aio.create_task(function() aio.sleep(0); return "ok" end)
    aio.get_running_loop():call_soon(function() child:cancel() end)
    local res = aio.gather({ child, other }, { return_exceptions = true })
    assert.is_true(aio.iserror(res[1], aio.CancelledError))
    assert.equal("ok", res[2])
  end))

  it("cancelling the gather future itself ends it cancelled", H.async(function()
    local child = aio.create_task(aio.sleep, 10)
    local g
    local caller = aio.create_task(function()
      local loop = aio.get_running_loop()
      -- a gather made outside any task is a plain future
      loop:call_soon(function() g = aio.gather({ child }, { return_exceptions = true }) end)
      aio.sleep(0)
      aio.sleep(0)
      g:cancel()
      return pcall(aio.await, g)
    end)
    local ok, err = caller:await()
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.CancelledError))
    assert.is_true(g:cancelled())
    assert.is_true(child:cancelled())
  end))
end)
