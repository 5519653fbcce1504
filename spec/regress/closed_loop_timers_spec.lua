-- Objects that outlived their loop's close or collection reached freed state: cancelling a
-- sleeping task after loop:close() queued its step into the released ready queue
-- (ready_ref == LUA_NOREF: a double free in lua_close), and TimerHandle:cancel() after its loop
-- was collected followed the handle's raw loop pointer into freed memory. Now a closed loop
-- queues nothing (the call is a no-op) and a loop's release detaches the timers still in its
-- heap. Each case runs in a child interpreter so a crash cannot take the suite with it.
local H = require "spec.helper"

local function run_child(src)
  local out, err, code = H.aloop_script("local aio = require 'aloop'\n" .. src .. "\nprint('ok')")
  assert.equal(0, code, err)
  assert.equal("ok\n", out)
  return err
end

describe("regress: timers and tasks after their loop is gone", function()
  it("cancels a sleeping task after loop:close() without touching the loop", function()
    run_child([[
      local loop = aio.new_event_loop()
      local t = loop:create_task(function() aio.sleep(10) end)
      loop:run_until_complete(aio.sleep, 0.01)
      loop:close()
      assert(t:cancel() ~= nil)
      t = nil
      collectgarbage()
    ]])
  end)

  it("cancels a TimerHandle whose loop was closed, then collected", function()
    run_child([[
      local h1, h2
      do
        local closed = aio.new_event_loop()
        h1 = closed:call_later(10, print)
        closed:close()
        h2 = aio.new_event_loop():call_later(10, print) -- never closed
      end
      collectgarbage(); collectgarbage()
      for _ = 1, 100 do aio.new_event_loop():close() end -- reuse the freed memory
      h1:cancel(); h2:cancel()
      assert(h1:cancelled() and h2:cancelled())
    ]])
  end)
end)
