-- Lesson: wait_for must not raise TimeoutError the moment the deadline passes. A typical broken
-- version cancelled the inner task and raised at once, so the caller went on while the inner task
-- was still running its cleanup (closing sockets, releasing locks) — the caller then raced with
-- it, and a cleanup that failed was reported as "never retrieved". asyncio waits for the
-- cancelled inner task to finish before raising TimeoutError; so must aloop.
local aio = require "aloop"
local H = require "spec.helper"

describe("regression: wait_for timeout", function()
  it("raises TimeoutError only after the inner task finished its cleanup", H.async(function()
    local log = {}
    local inner = aio.create_task(function()
      local ok, err = pcall(aio.sleep, 10)
      assert(not ok and aio.iserror(err, aio.CancelledError))
      log[#log + 1] = "cleanup started"
      aio.sleep(0.005) -- cleanup that itself suspends
      aio.sleep(0)
      log[#log + 1] = "cleaned"
      error(err, 0)
    end)
    local ok, err = pcall(aio.wait_for, inner, 0.01)
    log[#log + 1] = "timeout seen"
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.TimeoutError))
    assert.same({ "cleanup started", "cleaned", "timeout seen" }, log)
    assert.is_true(inner:done())
    assert.is_true(inner:cancelled())
  end))

  it("also waits for the cleanup of a coroutine object it wrapped", H.async(function()
    local cleaned = false
    local ok, err = pcall(aio.wait_for, aio.coro(function()
      local _ <close> = setmetatable({}, { __close = function()
        aio.sleep(0.001)
        cleaned = true
      end })
      aio.sleep(10)
    end), 0.01)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.TimeoutError))
    assert.is_true(cleaned)
  end))
end)
