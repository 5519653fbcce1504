-- Lesson: write() on a connection the peer has left must not raise. A broken version raised
-- InvalidStateError from every write() once the connection was lost, so a chat server's
-- broadcast loop died on the first dead client and the live ones after it got nothing.
-- asyncio drops such writes silently (logging a warning after a few) and lets drain() raise
-- the connection's error; InvalidStateError stays only for a write after write_eof().
local aio = require "aloop"
local H = require "spec.helper"
local it_fds = require("spec.net_helper").it_fds(it)

describe("regression: write after the connection is lost", function()
  it_fds("is dropped; drain() raises the connection error; live peers still get theirs", function()
    local clients = {}
    for i = 1, 3 do
      local a, b = aio.socket.socketpair()
      local r, w = aio.open_connection(nil, nil, { sock = a })
      clients[i] = { r = r, w = w, peer = b }
    end
    -- the second client leaves; a big write notices it (EPIPE) and loses that connection
    clients[2].peer:close()
    clients[2].w:write(string.rep("x", 1 << 20))
    local ok, err = pcall(function()
      for _ = 1, 100 do clients[2].w:drain(); aio.sleep(0) end
    end)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.ConnectionError), tostring(err))
    local records = H.capture_log(function()
      for round = 1, 6 do -- a broadcast: the dead client's writes are dropped, past the warning
        for _, c in ipairs(clients) do c.w:write("msg " .. round .. "\n") end
      end
    end)
    local warned = 0
    for _, rec in ipairs(records) do
      if rec.msg:find("writes to a closed or lost <aloop.Transport", 1, true) then warned = warned + 1 end
    end
    assert.equal(1, warned) -- once, at the fifth dropped write
    assert.is_false(pcall(clients[2].w.drain, clients[2].w))
    local expected = {}
    for round = 1, 6 do expected[round] = "msg " .. round .. "\n" end
    expected = table.concat(expected)
    for _, i in ipairs { 1, 3 } do
      local pr, pw = aio.open_connection(nil, nil, { sock = clients[i].peer })
      assert.equal(expected, pr:readexactly(#expected))
      pw:close()
      pw:wait_closed()
    end
    for _, c in ipairs(clients) do
      c.w:close()
      c.w:wait_closed()
    end
  end)

  it_fds("after write_eof() still raises InvalidStateError", function()
    local a, b = aio.socket.socketpair()
    local _, w = aio.open_connection(nil, nil, { sock = a })
    w:write_eof()
    local ok, err = pcall(w.write, w, "x")
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.InvalidStateError))
    w:close()
    w:wait_closed()
    b:close()
  end)
end)
