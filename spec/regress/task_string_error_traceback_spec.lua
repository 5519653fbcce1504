-- Lesson: an uncaught plain-string error that came out of a task must say where the task
-- raised it. The string travels through futures unchanged (API.md §4), so a broken version's
-- interpreter printed only the traceback of the last re-raise, `lua/aloop/...: in function
-- 'aloop.run'`, and the task's own stack was lost, even with --debug. The interpreter now
-- prints, after the usual traceback, the stack of the task that first raised the error.
local H = require "spec.helper"

describe("regression: an uncaught string error from a task", function()
  it("is printed with the stack of the task that raised it", function()
    local script = H.tmpfile([[
local aio = require "aloop"
local function deep_helper() error("boom in worker") end
local function worker() aio.sleep(0); deep_helper() end
aio.run(function() aio.await(aio.create_task(worker)) end)
]])
    local out, code = H.aloop(H.q(script))
    os.remove(script)
    assert.equal(1, code)
    assert.matches(":2: boom in worker", out, 1, true)
    local task_part = out:match("raised in a task:\n(.*)$")
    assert.is_not_nil(task_part, out)
    assert.matches("deep_helper", task_part, 1, true)
    assert.matches(":3: in function", task_part, 1, true)
  end)
end)
