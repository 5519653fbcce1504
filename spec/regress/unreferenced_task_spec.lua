-- Lesson: asyncio keeps only weak references to tasks, so a task nobody holds can be collected
-- mid-run and silently never finish. aloop promises the opposite (API.md §1): the loop keeps
-- every scheduled task alive until it is done. A typical broken version anchored the task only
-- while it was in the ready queue, so a fire-and-forget task suspended on a timer or a future was
-- collected by a full GC and its remaining code never ran.
local aio = require "aloop"
local H = require "spec.helper"

describe("regression: a task nobody references", function()
  it("finishes after full collections while it is suspended", H.async(function()
    local loop = aio.get_running_loop()
    local gate, done = loop:create_future(), loop:create_future()
    local weak = setmetatable({}, { __mode = "v" })
    do
      weak[1] = aio.create_task(function()
        gate:await()          -- suspended on a future
        aio.sleep(0.001)      -- suspended on a timer
        done:set_result("finished")
      end)
    end
    aio.sleep(0)
    collectgarbage()
    collectgarbage()
    assert.is_not_nil(weak[1])
    gate:set_result()
    aio.sleep(0)
    collectgarbage()
    assert.equal("finished", done:await())
  end))

  it("created from a callback also finishes", H.async(function()
    local loop = aio.get_running_loop()
    local done = loop:create_future()
    loop:call_soon(function()
      aio.create_task(function() aio.sleep(0.001); done:set_result(true) end)
    end)
    aio.sleep(0)
    collectgarbage()
    assert.is_true(done:await())
  end))
end)
