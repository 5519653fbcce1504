-- `require "aloop.busted"` as users call it (API.md §11): the module's `async` field and the
-- module itself, called directly, both wrap a test body as a task on a fresh loop.
local aio = require "aloop"

describe("aloop.busted", function()
  it("has an async field", require("aloop.busted").async(function()
    assert.is_not_nil(aio.current_task())
    aio.sleep(0)
  end))

  local async = require "aloop.busted"
  it("is itself callable as async", async(function()
    assert.is_not_nil(aio.current_task())
    assert.equal(2, aio.gather(aio.coro(function() aio.sleep(0); return 2 end))[1])
  end))

  it("the callable form passes options and fails a body that leaves a task running", function()
    local body = async(function() aio.get_running_loop():create_task(aio.sleep, 10) end)
    local ok, err = pcall(body)
    assert.is_false(ok)
    assert.matches("left 1 task running", tostring(err))
    body = async(function() error("inner failure") end, { timeout = 5 })
    ok, err = pcall(body)
    assert.is_false(ok)
    assert.matches("inner failure", tostring(err))
  end)

  it("rejects what is not a function, in both forms", function()
    assert.has_error(function() async(42) end, "aloop.busted.async: a function expected")
    assert.has_error(function() require("aloop.busted").async("x") end,
      "aloop.busted.async: a function expected")
  end)
end)
