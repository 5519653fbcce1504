-- A loop collected without close() kept owning its signals: the next loop's add_signal_handler
-- said "signal 10 is already handled by another event loop", or libev aborted ("a signal must
-- not be attached to two different loops"). A collected loop now shuts its own resources down
-- (core/resource.c, al_resources_close_own) and releases the signal; this holds it there.
local H = require "spec.helper"

describe("regress: signals of a loop collected without close()", function()
  it("go to the next loop that asks, which then receives them", function()
    local out, err, code = H.aloop_script([[
      local aio = require "aloop"
      for _ = 1, 3 do
        local loop = aio.new_event_loop()
        loop:add_signal_handler("SIGUSR1", function() end)
        loop:run_until_complete(aio.sleep, 0)
        loop = nil
        collectgarbage(); collectgarbage()
      end
      local loop = aio.new_event_loop()
      local got = loop:create_future()
      loop:add_signal_handler("SIGUSR1", function() got:set_result("delivered") end)
      loop:call_soon(function() os.execute("kill -USR1 " .. require("spec.helper").pid()) end)
      print(loop:run_until_complete(function() return aio.wait_for(got, 10) end))
      loop:close()
    ]])
    assert.equal(0, code, err)
    assert.equal("delivered\n", out)
  end)
end)
