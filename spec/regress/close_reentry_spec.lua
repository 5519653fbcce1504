-- loop:close() called from the exception handler while close() reported the pending tasks
-- re-entered close and reported them again (once per report: 100 times for 10 tasks). A loop
-- that is closing now ignores a nested close().
local aio = require "aloop"
local H = require "spec.helper"

describe("regress: loop:close() from the exception handler during close", function()
  it("reports each pending task once", function()
    local loop = aio.new_event_loop()
    local reports = 0
    loop:set_exception_handler(function(l, ctx)
      reports = reports + 1
      assert(reports <= 100, "close re-entered")
      l:close()
    end)
    for _ = 1, 10 do loop:create_task(function() aio.sleep(10) end) end
    loop:run_until_complete(aio.sleep, 0)
    loop:close()
    assert.equal(10, reports)
    assert.is_true(loop:is_closed())
  end)
end)
