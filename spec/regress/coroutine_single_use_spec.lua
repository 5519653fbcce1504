-- Lesson: a coroutine object is a single call, as an asyncio coroutine is. A broken version
-- ran the body again each time the object was awaited: aio.await(c) twice ran it twice,
-- gather(c, c, c) ran it three times, and as_completed({t, t}) yielded t twice. Now a second
-- await (or create_task) of the same coroutine object raises "cannot reuse already awaited
-- coroutine", and gather, wait and as_completed use one future per distinct awaitable.
local aio = require "aloop"
local H = require "spec.helper"

describe("regression: coroutine objects are single-use", function()
  it("a second await raises instead of running the body again", H.async(function()
    local runs = 0
    local c = aio.coro(function() runs = runs + 1; return runs end)
    assert.equal(1, aio.await(c))
    local ok, err = pcall(aio.await, c)
    assert.is_false(ok)
    assert.matches("cannot reuse already awaited coroutine", tostring(err))
    local ok2, err2 = pcall(aio.create_task, c)
    assert.is_false(ok2)
    assert.matches("cannot reuse already awaited coroutine", tostring(err2))
    assert.equal(1, runs)
  end))

  it("gather runs the same coroutine object once, with its result in each place",
    H.async(function()
      local runs = 0
      local c = aio.coro(function()
        runs = runs + 1
        aio.sleep(0)
        return "r"
      end)
      local res = aio.gather(c, c, c)
      assert.equal(1, runs)
      assert.same({ n = 3, "r", "r", "r" }, res)
    end))

  it("as_completed and wait take the same awaitable once", H.async(function()
    local t = aio.create_task(aio.sleep, 0, "x")
    local seen = 0
    for f in aio.as_completed({ t, t }) do
      assert.equal(t, f)
      seen = seen + 1
    end
    assert.equal(1, seen)
    local runs = 0
    local c = aio.coro(function() runs = runs + 1 end)
    local done = aio.wait({ c, c })
    local n = 0
    for _ in pairs(done) do n = n + 1 end
    assert.equal(1, n)
    assert.equal(1, runs)
  end))
end)
