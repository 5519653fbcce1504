-- Unix sockets, socketpairs, pipes and the low-level socket calls (lua/aloop/net/connections.lua
-- over src/net/socket.c and src/net/transport.c): create_unix_connection/server,
-- open_unix_connection/start_unix_server, aio.socket objects, connect_accepted_socket,
-- connect_read_pipe/connect_write_pipe, and sock_connect/sock_accept/sock_recv/sock_sendall.
-- Sockets counted.
local aio = require "aloop"
local it_fds = require("spec.net_helper").it_fds(it)

local function loop() return aio.get_running_loop() end

local function tmppath()
  local p = os.tmpname()
  os.remove(p)
  return p
end

local function exists(path) -- (io.open cannot open a socket file)
  return os.rename(path, path) == true
end

describe("unix sockets", function()
  it_fds("streams over a Unix socket; the socket file goes away with the server", function()
    local path = tmppath()
    local server = aio.start_unix_server(function(r, w)
      w:write("echo: " .. r:readline())
      w:close()
    end, path)
    assert.are.equal(path, server.sockets[1]:getsockname())
    assert.is_true(exists(path))
    local r, w = aio.open_unix_connection(path)
    w:write("hello\n")
    assert.are.equal("echo: hello\n", r:read(-1))
    assert.are.equal(path, w:get_extra_info("peername"))
    w:close()
    server:close()
    assert.is_false(exists(path))
  end)

  it_fds("protocols over a Unix socket: create_unix_server / create_unix_connection", function()
    local path = tmppath()
    local server = loop():create_unix_server(function()
      return { connection_made = function(_, tr) tr:write("from server"); tr:close() end }
    end, path)
    local got, lost = {}, loop():create_future()
    loop():create_unix_connection(function()
      return {
        data_received = function(_, d) got[#got + 1] = d end,
        connection_lost = function(_, e) lost:set_result(e) end,
      }
    end, path)
    assert.is_nil(aio.wait_for(lost, 5))
    assert.are.equal("from server", table.concat(got))
    server:close()
  end)

  it_fds("a stale socket file is replaced; a live one is not", function()
    local path = tmppath()
    local s = aio.socket.socket("unix")
    s:bind(path)
    s:close() -- the file stays, nobody listens: stale
    local server = aio.start_unix_server(function(_, w) w:close() end, path)
    local ok, err = pcall(aio.start_unix_server, function() end, path)
    assert.is_false(ok)
    assert.are.equal(98, err.errno) -- EADDRINUSE: a live server is there
    server:close()
  end)

  it_fds("connecting to a missing path raises OSError (ENOENT)", function()
    local ok, err = pcall(aio.open_unix_connection, tmppath())
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.OSError))
    assert.are.equal(2, err.errno)
  end)
end)

describe("socket objects", function()
  it_fds("socketpair: fileno, send, recv, getsockname, close once", function()
    local a, b = aio.socket.socketpair()
    assert.is_true(a:fileno() >= 0 and b:fileno() ~= a:fileno())
    assert.are.equal(5, a:send("hello"))
    assert.are.equal("hello", b:recv(100))
    assert.is_nil(b:recv(100)) -- nothing now (non-blocking)
    assert.are.equal("", a:getsockname())
    a:close()
    a:close()
    assert.are.equal("", b:recv(100)) -- EOF
    assert.are.equal(-1, a:fileno())
    local ok, err = pcall(a.send, a, "x")
    assert.is_false(ok)
    assert.are.equal(9, err.errno) -- EBADF
    b:close()
  end)

  it_fds("setblocking(true) makes recv wait; to-be-closed sockets", function()
    local a, b = aio.socket.socketpair()
    do
      local a2 <close> = a
      local b2 <close> = b
      b2:setblocking(true)
      a2:send("x")
      assert.are.equal("x", b2:recv(1))
    end
    assert.are.equal(-1, a:fileno())
    assert.are.equal(-1, b:fileno())
  end)

  it_fds("a protocol over a socketpair (connect_accepted_socket and create_connection{sock=})", function()
    local a, b = aio.socket.socketpair()
    local got = loop():create_future()
    local ta = loop():connect_accepted_socket(function()
      return { data_received = function(_, d) got:set_result(d) end }
    end, a)
    local tb = loop():create_connection(function() return {} end, nil, nil, { sock = b })
    tb:write("over the pair")
    assert.are.equal("over the pair", aio.wait_for(got, 5))
    ta:close()
    tb:close()
    aio.sleep(0)
  end)

  it_fds("streams over a socketpair (open_connection{sock=})", function()
    local a, b = aio.socket.socketpair()
    local r1, w1 = aio.open_connection(nil, nil, { sock = a })
    local r2, w2 = aio.open_connection(nil, nil, { sock = b })
    w1:write("ping\n")
    assert.are.equal("ping\n", r2:readline())
    w2:write("pong\n")
    assert.are.equal("pong\n", r1:readline())
    w1:close()
    assert.are.equal("", r2:read(-1))
    w2:close()
    w2:wait_closed()
  end)

  it_fds("sock_connect, sock_accept, sock_recv, sock_sendall (curio style)", function()
    local lsock = aio.socket.socket("inet")
    lsock:bind({ "127.0.0.1", 0 })
    lsock:listen(5)
    local port = lsock:getsockname()[2]
    local server = aio.create_task(function()
      local c, addr = loop():sock_accept(lsock)
      assert.are.equal("127.0.0.1", addr[1])
      local data = loop():sock_recv(c, 100)
      loop():sock_sendall(c, data .. data)
      c:close()
    end)
    local s = aio.socket.socket("inet")
    loop():sock_connect(s, { "127.0.0.1", port })
    assert.are.equal(port, s:getpeername()[2])
    local big = string.rep("q", 50)
    loop():sock_sendall(s, big)
    local got = {}
    while true do
      local d = loop():sock_recv(s, 65536)
      if d == "" then break end
      got[#got + 1] = d
    end
    assert.are.equal(big .. big, table.concat(got))
    aio.await(server)
    s:close()
    lsock:close()
  end)

  it_fds("sock_sendall of 8 MiB to a slow reader waits for writability", function()
    local a, b = aio.socket.socketpair()
    local payload = string.rep("w", 8 << 20)
    local reader = aio.create_task(function()
      local n = 0
      while n < #payload do n = n + #loop():sock_recv(b, 1 << 20) end
      return n
    end)
    loop():sock_sendall(a, payload)
    assert.are.equal(#payload, aio.await(reader))
    a:close()
    b:close()
  end)

  it_fds("a cancelled sock_recv leaves no watcher behind", function()
    local a, b = aio.socket.socketpair()
    local t = aio.create_task(function() return loop():sock_recv(a, 10) end)
    aio.sleep(0)
    t:cancel()
    assert.is_false(pcall(aio.await, t))
    assert.is_false(loop():remove_reader(a:fileno()))
    a:close()
    b:close()
  end)
end)

describe("pipes", function()
  it_fds("connect_read_pipe: data_received, eof_received, then connection_lost", function()
    local p = io.popen("printf 'from a pipe\\n'")
    local events, lost = {}, loop():create_future()
    local tr = loop():connect_read_pipe(function()
      return {
        data_received = function(_, d) events[#events + 1] = d end,
        eof_received = function() events[#events + 1] = "EOF"; return true end,
        connection_lost = function(_, e) lost:set_result(e) end,
      }
    end, p)
    assert.is_nil(aio.wait_for(lost, 5))
    assert.are.same({ "from a pipe\n", "EOF" }, events)
    assert.is_not_nil(tr:get_extra_info("pipe"))
    p:close() -- the transport had its own duplicate of the fd
  end)

  it_fds("connect_write_pipe: writes reach the reader; write_eof closes", function()
    local out = os.tmpname()
    local p = io.popen("cat > " .. out, "w")
    local lost = loop():create_future()
    local tr = loop():connect_write_pipe(function()
      return { connection_lost = function(_, e) lost:set_result(e) end }
    end, p)
    tr:write("line 1\n")
    tr:writelines({ "line ", "2\n" })
    tr:write_eof()
    assert.is_nil(aio.wait_for(lost, 5))
    p:close() -- our duplicate is closed: cat sees EOF once this one is too
    local f = io.open(out)
    assert.are.equal("line 1\nline 2\n", f:read("a"))
    f:close()
    os.remove(out)
  end)

  it_fds("a write pipe whose reader is gone: the connection is lost with EPIPE, no SIGPIPE", function()
    local p = io.popen("true", "w")
    local lost = loop():create_future()
    local tr = loop():connect_write_pipe(function()
      return { connection_lost = function(_, e) if not lost:done() then lost:set_result(e) end end }
    end, p)
    p:close() -- waits for `true` to exit: the read end is gone
    tr:write("nobody reads this")
    local err = aio.wait_for(lost, 5)
    assert.is_true(aio.iserror(err, aio.BrokenPipeError), tostring(err))
  end)
end)
