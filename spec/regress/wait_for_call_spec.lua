-- Lesson: the natural first try, aio.wait_for(reader:readline(), 1), runs readline before
-- wait_for is even called (arguments are evaluated first), and a broken version then failed
-- with "a coroutine object or function expected, got table" or a string, saying nothing of
-- why. wait_for now takes the function and its arguments, aio.wait_for(fn, timeout, ...)
-- (API.md §3), and the error for a value that is no awaitable says what happened and the fix.
local aio = require "aloop"
local H = require "spec.helper"

describe("regression: wait_for with a function and its arguments", function()
  it("runs fn(...) as the awaited task, with its timeout", H.async(function()
    local a, b = aio.socket.socketpair()
    local r, w = aio.open_connection(nil, nil, { sock = a })
    local ok, err = pcall(aio.wait_for, r.readline, 0.01, r)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.TimeoutError))
    b:send("line\n")
    assert.equal("line\n", aio.wait_for(r.readline, 5, r))
    assert.same({ n = 3, 1, nil, 3 }, table.pack(aio.wait_for(function(...) return ... end, nil,
      1, nil, 3)))
    w:close()
    b:close()
    w:wait_closed()
  end))

  it("explains a value that is not awaitable", H.async(function()
    local ok, err = pcall(function() aio.wait_for("line\n", 1) end)
    assert.is_false(ok)
    assert.matches("got string", err)
    assert.matches("aio.wait_for%(reader.readline, 1, reader%)", err)
    assert.matches("wait_for_call_spec.lua", err) -- blames the caller's line
    local t = aio.create_task(aio.sleep, 0)
    local ok2, err2 = pcall(function() aio.wait_for(t, 1, "stray") end)
    assert.is_false(ok2)
    assert.matches("arguments after the timeout are for a function", err2)
    aio.await(t)
  end))
end)
