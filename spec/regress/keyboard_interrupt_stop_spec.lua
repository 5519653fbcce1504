-- Lesson: a task that raises aio.KeyboardInterrupt must not leave a stop behind. The
-- interrupt leaves run_until_complete by itself; a broken version also had the finished
-- future's done callback queue loop:stop(), which then ran at the start of the next
-- run_until_complete on that loop and failed it with "Event loop stopped before Future
-- completed" (CPython issue 22429: the done callback ignores KeyboardInterrupt).
local aio = require "aloop"

describe("regression: KeyboardInterrupt from a task", function()
  it("leaves the loop usable for the next run_until_complete", function()
    local loop = aio.new_event_loop()
    local ok, err = pcall(loop.run_until_complete, loop, function()
      error(aio.KeyboardInterrupt())
    end)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.KeyboardInterrupt))
    assert.equal("second", loop:run_until_complete(function()
      aio.sleep(0.001)
      return "second"
    end))
    loop:close()
  end)
end)
