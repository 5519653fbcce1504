-- aio.wait_for(future_of_another_loop, 0.2) never returned (the other loop never runs, so the
-- future's callbacks never wake this one) and wait/as_completed timed out silently. Now a
-- future of a different loop is refused at once with a clear error, as asyncio does.
local aio = require "aloop"
local H = require "spec.helper"

describe("regress: combinators given a future of another loop", function()
  it("raise 'belongs to a different loop' at once", H.async(function(loop)
    local other = aio.new_event_loop()
    local f = other:create_future()
    local calls = {
      wait_for = function() return aio.wait_for(f, 0.2) end,
      wait = function() return aio.wait({ f }, { timeout = 0.2 }) end,
      as_completed = function() for _ in aio.as_completed({ f }, { timeout = 0.2 }) do end end,
      gather = function() return aio.gather(f, loop:create_future()) end,
    }
    for name, call in pairs(calls) do
      local t0 = loop:time()
      local ok, err = pcall(call)
      assert.is_false(ok, name)
      assert.matches("aloop%." .. name .. ": the future belongs to a different loop", tostring(err))
      assert.is_true(loop:time() - t0 < 0.2, name) -- refused, not timed out
    end
    other:close()
  end))
end)
