-- Lesson: the scheduling calls must check and keep what they are given, as asyncio does. A
-- broken version clamped a negative call_later delay to "now", so call_later(-1, a) and
-- call_later(-2, b) ran a before b and when() claimed now (asyncio runs b, a; when() is
-- now-1, as call_at with past times already did); and call_soon(1) or call_later(0, 1)
-- were accepted, failing later in the exception handler far from the mistake.
local aio = require "aloop"
local H = require "spec.helper"

describe("regression: call_soon/call_later/call_at arguments", function()
  it("a negative delay is a time in the past, ordered as such", function()
    local loop = aio.new_event_loop()
    local order = {}
    local before = loop:time()
    local a = loop:call_later(-1, function() order[#order + 1] = "a" end)
    local b = loop:call_later(-2, function() order[#order + 1] = "b" end)
    assert.is_true(a:when() <= before - 1 + 0.5)
    assert.is_true(b:when() < a:when())
    loop:run_until_complete(aio.sleep, 0)
    assert.same({ "b", "a" }, order)
    loop:close()
  end)

  it("a callback that cannot be called is refused at the call", H.async(function(loop)
    for _, call in ipairs {
      function() loop:call_soon(1) end,
      function() loop:call_soon_threadsafe("x") end,
      function() loop:call_later(0, 1) end,
      function() loop:call_at(loop:time(), {}) end,
    } do
      local ok, err = pcall(call)
      assert.is_false(ok)
      assert.matches("function expected", tostring(err))
    end
    local called = false
    loop:call_soon(setmetatable({}, { __call = function() called = true end }))
    aio.sleep(0)
    assert.is_true(called)
  end))
end)
