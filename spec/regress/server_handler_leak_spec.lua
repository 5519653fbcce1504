-- Lesson: a start_server connection whose handler returns without close() must not stay open
-- once the peer has left. A broken version kept such a transport (and its fd) until the loop
-- closed: a server whose handler answered and returned leaked one fd per client (300 clients,
-- 300 fds). Now the connection closes when the peer's EOF comes after the handler is done (at
-- once when the EOF came first); a handler that still runs keeps it, as before.
local aio = require "aloop"
local N = require "spec.net_helper"
local it_fds = N.it_fds(it)

describe("regression: a server handler that returns without closing", function()
  it_fds("does not keep the connection once the peer has left", function()
    local served = 0
    local server = aio.start_server(function(r, w)
      local line = r:readline()
      w:write("hello " .. line)
      -- odd clients: the handler sees the peer's EOF before it returns; even: after
      if tonumber(line) % 2 == 1 then assert.equal("", r:read(-1)) end
      served = served + 1
    end, "127.0.0.1", 0)
    local port = server.sockets[1]:getsockname()[2]
    local before = N.socket_count()
    for i = 1, 30 do
      local r, w = aio.open_connection("127.0.0.1", port)
      w:write(i .. "\n")
      assert.equal("hello " .. i .. "\n", r:readline())
      w:close()
      w:wait_closed()
    end
    local now
    for _ = 1, 200 do -- the server side closes from the loop's next iterations
      now = N.socket_count()
      if now == before then break end
      aio.sleep(0.001)
    end
    assert.equal(30, served)
    assert.equal(before, now)
    server:close()
    server:wait_closed()
  end)

  it_fds("keeps the connection while the peer is still there", function()
    local handler_done = aio.Event()
    local server = aio.start_server(function(_, w)
      w:write("bye\n")
      handler_done:set()
    end, "127.0.0.1", 0)
    local r, w = aio.open_connection("127.0.0.1", server.sockets[1]:getsockname()[2])
    assert.equal("bye\n", r:readline())
    handler_done:wait()
    aio.sleep(0)
    assert.is_false(r:at_eof())
    w:write_eof() -- the peer leaves: the server side closes, the client sees its EOF
    assert.equal("", r:read(-1))
    w:close()
    w:wait_closed()
    server:close()
    server:wait_closed()
  end)
end)
