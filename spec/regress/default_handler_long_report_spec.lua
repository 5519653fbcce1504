-- The default exception handler built its report in a luaL_Buffer while reading the context's
-- fields onto the same stack: once the text outgrew the buffer's first block (~2 KB) the buffer
-- moved to the stack and the next pop freed it, so any long report ("Task exception was never
-- retrieved" with a long message too) segfaulted. Now the pieces are collected first and joined
-- at the end: a report of any length is printed whole.
local H = require "spec.helper"

describe("regress: the default exception handler with a long report", function()
  it("prints a 3000-byte error raised by a callback and the loop keeps running", function()
    local out, err, code = H.aloop_script([[
      local aio = require "aloop"
      local loop = aio.new_event_loop()
      loop:call_soon(function() error(("x"):rep(3000)) end)
      loop:run_until_complete(aio.sleep, 0.01)
      loop:close()
      print("still running")
    ]])
    assert.equal(0, code, err)
    assert.equal("still running\n", out)
    assert.matches("Exception in callback", err, 1, true)
    assert.matches(("x"):rep(3000), err, 1, true)
  end)

  it("prints a long 'Task exception was never retrieved' report", function()
    local out, err, code = H.aloop_script([[
      local aio = require "aloop"
      local loop = aio.new_event_loop()
      loop:create_task(function() error(("y"):rep(5000)) end)
      loop:run_until_complete(aio.sleep, 0.01)
      loop:close()
      collectgarbage()
      print("done")
    ]])
    assert.equal(0, code, err)
    assert.equal("done\n", out)
    assert.matches("Task exception was never retrieved", err, 1, true)
    assert.matches(("y"):rep(5000), err, 1, true)
  end)
end)
