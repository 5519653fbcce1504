-- Lesson: a read whose waiting task is cancelled must leave the StreamReader as it was. The
-- reader records the one task waiting for data; a broken version kept that record when the
-- wait was cancelled, so after one `wait_for(aio.coro(r.readline, r), 0.05)` timed out every
-- later readline/read/readexactly/readuntil raised "another task is already waiting for
-- incoming data" for good. Read-with-timeout is week-one code: whichever way the wait ends
-- (wait_for, aio.timeout, task:cancel()) and whatever feeds the reader (a socket, a
-- subprocess's pipe), data that arrives later is read by the next call.
local aio = require "aloop"
local it_fds = require("spec.net_helper").it_fds(it)

local PIPE = aio.subprocess.PIPE

-- cancel(reader): one readline that is cancelled while it waits, three ways.
local cancels = {
  wait_for = function(r)
    local ok, err = pcall(aio.wait_for, aio.coro(r.readline, r), 0.01)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.TimeoutError))
  end,
  timeout = function(r)
    local ok, err = pcall(function()
      local _ <close> = aio.timeout(0.01)
      r:readline()
    end)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.TimeoutError))
  end,
  task_cancel = function(r)
    local t = aio.create_task(r.readline, r)
    aio.sleep(0)
    t:cancel()
    local ok, err = pcall(aio.await, t)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.CancelledError))
  end,
}

describe("regression: a cancelled read", function()
  for how, cancel in pairs(cancels) do
    it_fds("(" .. how .. ") leaves a socket stream's reader usable", function()
      local a, b = aio.socket.socketpair()
      local r, w = aio.open_connection(nil, nil, { sock = a })
      cancel(r)
      b:send("one\ntw")
      assert.equal("one\n", r:readline())
      cancel(r) -- a partial line is buffered: it stays there
      b:send("o\nthree|rest")
      assert.equal("two\n", r:readline())
      assert.equal("three|", r:readuntil("|"))
      assert.equal("re", r:readexactly(2))
      b:close()
      assert.equal("st", r:read(-1))
      w:close()
      w:wait_closed()
    end)

    it_fds("(" .. how .. ") leaves a subprocess stdout reader usable", function()
      local p = aio.create_subprocess_exec("cat", { stdin = PIPE, stdout = PIPE })
      cancel(p.stdout)
      p.stdin:write("late\n")
      assert.equal("late\n", aio.wait_for(aio.coro(p.stdout.readline, p.stdout), 5))
      cancel(p.stdout)
      p.stdin:close()
      assert.equal("", p.stdout:read(-1))
      assert.equal(0, p:wait())
    end)
  end
end)
