-- Lesson: closing a server must be able to end its connections, and wait_closed() must mean
-- they are gone (asyncio 3.12+). A broken version's server:close() only stopped listening:
-- the accepted connections stayed open with no way to reach them from the Server, and
-- wait_closed() returned at once while they still ran. Now the Server counts its connections;
-- close_clients() closes them, abort_clients() aborts them, and wait_closed() returns once the
-- server is closed and every connection's fd is closed.
local aio = require "aloop"
local it_fds = require("spec.net_helper").it_fds(it)

-- A protocol server whose connections stay open until closed from outside.
local function idle_server()
  local made = 0
  local server = aio.get_running_loop():create_server(function()
    return { connection_made = function() made = made + 1 end }
  end, "127.0.0.1", 0)
  return server, server.sockets[1]:getsockname()[2], function() return made end
end

describe("regression: a server's connections", function()
  it_fds("wait_closed() waits for them; close_clients() ends them", function()
    local server, port, made = idle_server()
    local clients = {}
    for i = 1, 3 do clients[i] = { aio.open_connection("127.0.0.1", port) } end
    for _ = 1, 100 do
      if made() == 3 then break end
      aio.sleep(0.001)
    end
    assert.equal(3, made())
    server:close()
    local waiter = aio.create_task(server.wait_closed, server)
    aio.sleep(0.01)
    assert.is_false(waiter:done()) -- closed, but the connections are still open
    server:close_clients()
    aio.wait_for(waiter, 5)
    for _, c in ipairs(clients) do -- each client sees the server's EOF
      assert.equal("", c[1]:read(-1))
      c[2]:close()
      c[2]:wait_closed()
    end
  end)

  it_fds("abort_clients() aborts them (the peer sees a reset or EOF)", function()
    local server, port, made = idle_server()
    local r, w = aio.open_connection("127.0.0.1", port)
    for _ = 1, 100 do
      if made() == 1 then break end
      aio.sleep(0.001)
    end
    server:close()
    server:abort_clients()
    server:wait_closed()
    local ok, data = pcall(r.read, r, -1)
    assert.is_true(not ok or data == "")
    w:close()
    w:wait_closed()
  end)

  it_fds("start_server handlers' connections count too", function()
    local release = aio.Event()
    local server = aio.start_server(function(_, w)
      release:wait()
      w:close()
    end, "127.0.0.1", 0)
    local r, w = aio.open_connection("127.0.0.1", server.sockets[1]:getsockname()[2])
    server:close()
    local waiter = aio.create_task(server.wait_closed, server)
    aio.sleep(0.01)
    assert.is_false(waiter:done())
    release:set()
    aio.wait_for(waiter, 5)
    assert.equal("", r:read(-1))
    w:close()
    w:wait_closed()
  end)
end)
