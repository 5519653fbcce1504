-- Lesson: a cancel message must survive every combinator. t:cancel("my message") on a task
-- awaiting aio.gather(...) raised a CancelledError whose message was nil in a broken version:
-- the gather passed the message on to its children but then ended its own future with a fresh
-- CancelledError (and reported a child's cancellation the same way), while a plain sleep,
-- await, wait_for or shield kept it. asyncio carries the message through gather.
local aio = require "aloop"
local H = require "spec.helper"

local function cancel_with(msg, fn)
  local t = aio.create_task(fn)
  aio.sleep(0)
  t:cancel(msg)
  local ok, err = pcall(aio.await, t)
  assert.is_false(ok)
  assert.is_true(aio.iserror(err, aio.CancelledError), tostring(err))
  return err
end

describe("regression: the cancel message through gather", function()
  it("reaches the task that awaited the gather", H.async(function()
    local err = cancel_with("my message", function()
      aio.gather(aio.coro(aio.sleep, 10), aio.coro(aio.sleep, 10))
    end)
    assert.equal("my message", err.message)
  end))

  it("reaches it with return_exceptions too", H.async(function()
    local err = cancel_with("stop now", function()
      aio.gather({ aio.coro(aio.sleep, 10) }, { return_exceptions = true })
    end)
    assert.equal("stop now", err.message)
  end))

  it("is kept in a child's CancelledError the gather reports", H.async(function()
    local child = aio.create_task(aio.sleep, 10)
    aio.get_running_loop():call_soon(function() child:cancel("child went") end)
    local res = aio.gather({ child }, { return_exceptions = true })
    assert.is_true(aio.iserror(res[1], aio.CancelledError))
    assert.equal("child went", res[1].message)
    local other = aio.create_task(aio.sleep, 10)
    aio.get_running_loop():call_soon(function() other:cancel("other went") end)
    local ok, err = pcall(aio.gather, other)
    assert.is_false(ok)
    assert.equal("other went", err.message)
  end))
end)
