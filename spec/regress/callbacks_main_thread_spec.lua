-- Lesson: callbacks and task steps must run on the loop's main Lua thread, never on the coroutine
-- of the task that scheduled them (API.md §1). A typical broken version ran done callbacks
-- directly from set_result inside the task that completed the future, so the callback ran on that
-- task's coroutine: it could "suspend" the wrong task, current_task() lied, and a callback that
-- raised killed the task instead of going to the exception handler.
local aio = require "aloop"
local H = require "spec.helper"

local function on_main() return select(2, coroutine.running()) end

describe("regression: callbacks run on the main Lua thread", function()
  it("the specs themselves run on the main thread", function()
    assert.is_true(on_main())
  end)

  it("call_soon, call_later and done callbacks scheduled from a task", H.async(function()
    assert.is_false(on_main()) -- we are in a task
    local loop = aio.get_running_loop()
    local seen = {}
    local fut = loop:create_future()
    local all = loop:create_future()
    local function record(name)
      return function()
        seen[name] = { main = on_main(), task = aio.current_task() }
        local n = 0
        for _ in pairs(seen) do n = n + 1 end
        if n == 4 and not all:done() then all:set_result() end
      end
    end
    loop:call_soon(record("call_soon"))
    loop:call_later(0.001, record("call_later"))
    fut:add_done_callback(record("done_callback"))
    fut:set_result(1) -- completed from inside the task
    local t = aio.create_task(function() end)
    t:add_done_callback(record("task_done_callback"))
    all:await()
    for name, s in pairs(seen) do
      assert.is_true(s.main, name)
      assert.is_nil(s.task, name)
    end
  end))

  it("a raising callback goes to the exception handler, not into the task", H.async(function()
    local loop = aio.get_running_loop()
    local reports = {}
    loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
    local fut = loop:create_future()
    fut:add_done_callback(function() error("callback failed", 0) end)
    fut:set_result()
    aio.sleep(0)
    aio.sleep(0)
    assert.equal(1, #reports)
    assert.equal("callback failed", reports[1].exception)
  end))
end)
