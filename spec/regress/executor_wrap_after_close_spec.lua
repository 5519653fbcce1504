-- A loop closed while an executor job it waits on is still queued or running leaked: the loop
-- future that follows the job sat in a registry ref that only the job's completion released,
-- and that completion, finding the loop closed, dropped it without unref (600 aio.run calls
-- grew the heap 380 -> 825 KB). Worse, the finishing thread still posted to the Wrap's raw loop
-- pointer, freed once the loop was collected. Now the loop detaches its pending wraps when it
-- closes or is collected: the ref goes at once, and the finishing thread only frees the Wrap.
local aio = require "aloop"
local H = require "spec.helper"

describe("regress: loops closed while an executor job is pending", function()
  it("leave neither the Lua heap nor the process growing, and survive the jobs ending", function()
    local fifo = os.tmpname()
    os.remove(fifo)
    assert(os.execute("mkfifo " .. H.q(fifo)))
    local pool = aio.executor.ThreadPool(1)
    -- The one worker blocks until the fifo is written: every job below stays queued.
    local gate = pool:submit(function(path) return io.open(path):read("l") end, fifo)
    local function one()
      local loop = aio.new_event_loop()
      aio.wrap_future(pool:submit(function() return 1 end), loop)
      loop:close()
    end
    for _ = 1, 50 do one() end
    collectgarbage(); collectgarbage()
    local before = collectgarbage("count")
    for _ = 1, 300 do one() end
    collectgarbage(); collectgarbage()
    local grown = collectgarbage("count") - before
    -- The leak kept every future (~0.7 KB each: 200+ KB here); allow noise, not that.
    assert.is_true(grown < 60, ("heap grew %.0f KB"):format(grown))
    local w = assert(io.open(fifo, "w"))
    w:write("go\n")
    w:close()
    assert.equal("go", gate:result(10))
    pool:shutdown(true) -- the queued jobs finish after their loops were collected
    os.remove(fifo)
  end)
end)
