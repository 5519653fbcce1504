-- Lesson: tasks waiting for the same event each need a future of their own. A broken version
-- handed every task in drain(), StreamWriter:wait_closed() or Server:wait_closed() one future
-- per object. Cancelling one waiter (a timeout around one drain) cancelled that shared future,
-- so every other task waiting on it got CancelledError too, and the cancelled future stayed:
-- every later drain() on that writer raised CancelledError at once. And a drain() pending when
-- the connection was aborted raised the Future object itself instead of ConnectionResetError
-- (the wake-up named the error by a stack index that pointed at the future it had pushed).
local aio = require "aloop"
local it_fds = require("spec.net_helper").it_fds(it)

-- A writer over a socketpair whose peer does not read yet, filled over its high-water mark.
local function blocked_writer()
  local a, b = aio.socket.socketpair()
  local r, w = aio.open_connection(nil, nil, { sock = a })
  w.transport:set_write_buffer_limits(1024)
  w:write(string.rep("x", 1 << 22))
  assert.is_true(w.transport:get_write_buffer_size() > 1024)
  return r, w, b
end

local function cancelled(t)
  local ok, err = pcall(aio.await, t)
  return not ok and aio.iserror(err, aio.CancelledError)
end

describe("regression: shared waiter futures", function()
  it_fds("a cancelled drain() leaves the other drains waiting and the next drain fresh", function()
    local _, w, b = blocked_writer()
    local first = aio.create_task(w.drain, w)
    local second = aio.create_task(w.drain, w)
    aio.sleep(0)
    first:cancel()
    assert.is_true(cancelled(first))
    assert.is_false(second:done())
    local ok, err = pcall(aio.wait_for, aio.coro(w.drain, w), 0.01)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.TimeoutError), tostring(err)) -- not CancelledError
    -- the peer reads everything: the drains still waiting complete normally
    local pr, pw = aio.open_connection(nil, nil, { sock = b })
    local reader = aio.create_task(pr.readexactly, pr, 1 << 22)
    aio.wait_for(second, 10)
    w:drain()
    assert.equal(1 << 22, #aio.wait_for(reader, 10))
    w:close()
    w:wait_closed()
    pw:close()
    pw:wait_closed()
  end)

  it_fds("a drain() pending during abort() raises ConnectionResetError", function()
    local _, w, b = blocked_writer()
    local t = aio.create_task(w.drain, w)
    aio.sleep(0)
    w.transport:abort()
    local ok, err = pcall(aio.await, t)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.ConnectionResetError), tostring(err))
    b:close()
  end)

  it_fds("a cancelled StreamWriter:wait_closed() leaves the other waiters waiting", function()
    local _, w, b = blocked_writer()
    local first = aio.create_task(w.wait_closed, w)
    local second = aio.create_task(w.wait_closed, w)
    aio.sleep(0)
    first:cancel()
    assert.is_true(cancelled(first))
    assert.is_false(second:done())
    w.transport:abort()
    aio.wait_for(second, 10)
    w:wait_closed()
    b:close()
  end)

  it_fds("a cancelled Server:wait_closed() leaves the other waiters waiting", function()
    local server = aio.start_server(function() end, "127.0.0.1", 0)
    local first = aio.create_task(server.wait_closed, server)
    local second = aio.create_task(server.wait_closed, server)
    aio.sleep(0)
    first:cancel()
    assert.is_true(cancelled(first))
    assert.is_false(second:done())
    server:close()
    aio.wait_for(second, 10)
    server:wait_closed()
  end)
end)
