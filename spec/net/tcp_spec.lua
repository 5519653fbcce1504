-- TCP transports, protocols and servers (src/net/transport.c, src/net/server.c,
-- lua/aloop/net/connections.lua): asyncio's semantics for write/close/abort/write_eof/flow control,
-- servers, and the error cases of the networking issue. Every spec checks that the fds it opened
-- are all closed.
local aio = require "aloop"
local H = require "spec.helper"

local it_fds = require("spec.net_helper").it_fds(it)
local socket_count = require("spec.net_helper").socket_count

local function loop() return aio.get_running_loop() end

-- An echo server protocol on 127.0.0.1; returns the server and its port.
local function echo_server(opts)
  local server = loop():create_server(function()
    return {
      connection_made = function(self, tr) self.tr = tr end,
      data_received = function(self, d) self.tr:write(d) end,
    }
  end, "127.0.0.1", 0, opts)
  return server, server.sockets[1]:getsockname()[2]
end

-- A client protocol that records what happens; p:wait(n) waits until n bytes arrived,
-- p:lost() until connection_lost ran.
local function recorder(extra)
  local p = { events = {}, received = "", lost_fut = loop():create_future() }
  function p:connection_made(tr) self.tr = tr; self.events[#self.events + 1] = "made" end
  function p:data_received(d)
    self.received = self.received .. d
    if self.want and #self.received >= self.want then self.want_fut:set_result() end
  end
  function p:eof_received() self.events[#self.events + 1] = "eof"; return self.keep_open end
  function p:connection_lost(err)
    self.events[#self.events + 1] = "lost"
    self.err = err
    self.lost_fut:set_result()
  end
  function p:wait(n)
    if #self.received >= n then return end
    self.want, self.want_fut = n, loop():create_future()
    aio.wait_for(self.want_fut, 5)
  end
  function p:lost() aio.wait_for(self.lost_fut, 5) end
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

local function connect(port, p, host)
  local tr = loop():create_connection(function() return p end, host or "127.0.0.1", port)
  return tr, p
end

describe("TCP", function()
  it_fds("echoes through create_server and create_connection (port 0: the OS picks)", function()
    local server, port = echo_server()
    assert.is_true(port > 0)
    local tr, p = connect(port, recorder())
    tr:write("hello ")
    tr:writelines({ "wor", "ld" })
    p:wait(11)
    assert.are.equal("hello world", p.received)
    tr:close()
    p:lost()
    assert.are.same({ "made", "lost" }, p.events)
    assert.is_nil(p.err)
    server:close()
    server:wait_closed()
  end)

  for _, host in ipairs({ "localhost", "::1", "0.0.0.0" }) do
    it_fds("serves on host " .. host, function()
      local server = loop():create_server(function()
        return { connection_made = function(self, tr) tr:write("hi"); tr:close() end }
      end, host, 0)
      local addr = server.sockets[1]:getsockname()
      local _, p = connect(addr[2], recorder(), host == "0.0.0.0" and "127.0.0.1" or host)
      p:lost()
      assert.are.equal("hi", p.received)
      assert.are.same({ "made", "eof", "lost" }, p.events)
      server:close()
    end)
  end

  it_fds("refused: ConnectionRefusedError with errno and strerror", function()
    local s = aio.socket.socket("inet")
    s:bind({ "127.0.0.1", 0 })
    local port = s:getsockname()[2]
    s:close() -- nothing listens there now
    local ok, err = pcall(connect, port, recorder())
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.ConnectionRefusedError), tostring(err))
    assert.is_true(aio.iserror(err, aio.OSError))
    assert.are.equal(111, err.errno)
    assert.is_string(err.strerror)
  end)

  it_fds("bad address strings raise OSError", function()
    local ok, err = pcall(loop().create_server, loop(), function() return {} end, "300.1.2.3.4", 0)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.OSError), tostring(err))
    local s <close> = aio.socket.socket("inet")
    ok, err = pcall(s.bind, s, { "::1", 0 })
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.OSError), tostring(err))
    assert.are.equal(22, err.errno)
  end)

  it_fds("write after close is dropped; close twice is harmless; connection_lost runs once", function()
    local server, port = echo_server()
    local tr, p = connect(port, recorder())
    tr:close()
    tr:close()
    assert.is_true(tr:is_closing())
    tr:write("x") -- dropped without an error, as asyncio does
    assert.are.equal(0, tr:get_write_buffer_size())
    p:lost()
    tr:close()
    tr:abort()
    aio.sleep(0)
    aio.sleep(0)
    assert.are.same({ "made", "lost" }, p.events)
    server:close()
  end)

  it_fds("write after write_eof raises", function()
    local server, port = echo_server()
    local tr, p = connect(port, recorder())
    assert.is_true(tr:can_write_eof())
    tr:write_eof()
    local ok, err = pcall(tr.write, tr, "x")
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.InvalidStateError))
    assert.matches("write_eof", err.message)
    tr:close()
    p:lost()
    server:close()
  end)

  it_fds("pending writes flush before connection_lost (close with 4 MiB buffered)", function()
    local got = 0
    local done = loop():create_future()
    local server = loop():create_server(function()
      return {
        data_received = function(_, d) got = got + #d end,
        eof_received = function() done:set_result() end,
      }
    end, "127.0.0.1", 0)
    local tr, p = connect(server.sockets[1]:getsockname()[2], recorder())
    local chunk = string.rep("x", 65536)
    for _ = 1, 64 do tr:write(chunk) end
    assert.is_true(tr:get_write_buffer_size() > 0)
    tr:close()
    p:lost()
    assert.is_nil(p.err)
    aio.wait_for(done, 5)
    assert.are.equal(64 * 65536, got)
    server:close()
  end)

  it_fds("abort() discards the buffer and calls connection_lost(nil)", function()
    local server, port = echo_server()
    local tr, p = connect(port, recorder())
    tr:write(string.rep("y", 4 << 20))
    tr:abort()
    assert.are.equal(0, tr:get_write_buffer_size())
    p:lost()
    assert.is_nil(p.err)
    server:close()
  end)

  it_fds("eof_received returning true keeps the transport half-open for writing", function()
    local server = loop():create_server(function()
      local buf = {}
      return {
        connection_made = function(self, tr) self.tr = tr end,
        data_received = function(_, d) buf[#buf + 1] = d end,
        eof_received = function(self)
          self.tr:write("got " .. table.concat(buf))
          self.tr:close()
          return true
        end,
      }
    end, "127.0.0.1", 0)
    local tr, p = connect(server.sockets[1]:getsockname()[2], recorder())
    tr:write("question")
    tr:write_eof()
    p:lost()
    assert.are.equal("got question", p.received)
    assert.are.same({ "made", "eof", "lost" }, p.events)
    server:close()
  end)

  it_fds("eof_received returning nothing closes the transport", function()
    local lost = loop():create_future()
    local server = loop():create_server(function()
      return { connection_lost = function(_, err) lost:set_result(err) end }
    end, "127.0.0.1", 0)
    local tr, p = connect(server.sockets[1]:getsockname()[2], recorder())
    tr:write_eof()
    assert.is_nil(aio.wait_for(lost, 5))
    p:lost()
    server:close()
  end)

  it_fds("pause_reading / resume_reading / is_reading", function()
    local server, port = echo_server()
    local tr, p = connect(port, recorder())
    assert.is_true(tr:is_reading())
    tr:pause_reading()
    assert.is_false(tr:is_reading())
    tr:write("ping")
    for _ = 1, 5 do aio.sleep(0.01) end -- the echo is back in the kernel by now
    assert.are.equal("", p.received)
    tr:resume_reading()
    assert.is_true(tr:is_reading())
    p:wait(4)
    assert.are.equal("ping", p.received)
    tr:close()
    assert.is_false(tr:is_reading())
    p:lost()
    server:close()
  end)

  it_fds("write-buffer limits drive pause_writing/resume_writing", function()
    local peer
    local server = loop():create_server(function()
      return { connection_made = function(_, t) peer = t; t:pause_reading() end }
    end, "127.0.0.1", 0)
    local calls = {}
    local resumed = loop():create_future()
    local tr, p = connect(server.sockets[1]:getsockname()[2], recorder({
      pause_writing = function() calls[#calls + 1] = "pause" end,
      resume_writing = function() calls[#calls + 1] = "resume"; resumed:set_result() end,
    }))
    tr:set_write_buffer_limits(1000, 100)
    assert.are.same({ 100, 1000 }, { tr:get_write_buffer_limits() })
    local chunk = string.rep("z", 65536)
    while tr:get_write_buffer_size() == 0 do tr:write(chunk) end -- fill the kernel buffers
    assert.are.same({ "pause" }, calls)
    peer:resume_reading()
    aio.wait_for(resumed, 5)
    assert.are.same({ "pause", "resume" }, calls)
    assert.is_true(tr:get_write_buffer_size() <= 100)
    tr:close()
    p:lost()
    server:close()
  end)

  it_fds("get_extra_info: peername, sockname, socket, default", function()
    local server, port = echo_server()
    local tr, p = connect(port, recorder())
    local peer, name = tr:get_extra_info("peername"), tr:get_extra_info("sockname")
    assert.are.same({ "127.0.0.1", port }, { peer[1], peer[2] })
    assert.are.equal("127.0.0.1:" .. port, tostring(peer))
    assert.are.equal("127.0.0.1", name[1])
    assert.are.equal(tr:get_extra_info("socket"):getsockname()[2], name[2])
    assert.are.equal("dflt", tr:get_extra_info("nothing", "dflt"))
    tr:close()
    p:lost()
    assert.are.equal("dflt", tr:get_extra_info("peername", "dflt"))
    server:close()
  end)

  it_fds("a protocol method that raises is reported; only its connection is aborted", function()
    local server = loop():create_server(function()
      return {
        connection_made = function(self, tr) self.tr = tr end,
        data_received = function(self, d)
          if d == "boom" then error("protocol failure") end
          self.tr:write(d)
        end,
      }
    end, "127.0.0.1", 0)
    local port = server.sockets[1]:getsockname()[2]
    local reports = {}
    loop():set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
    local tr1, p1 = connect(port, recorder())
    local tr2, p2 = connect(port, recorder())
    tr1:write("boom")
    p1:lost()
    tr2:write("still here")
    p2:wait(10)
    assert.are.equal("still here", p2.received)
    assert.are.equal(1, #reports)
    assert.matches("protocol.data_received%(%) call failed", reports[1].message)
    assert.matches("protocol failure", tostring(reports[1].exception))
    assert.is_not_nil(reports[1].transport)
    tr2:close()
    p2:lost()
    server:close()
  end)

  it_fds("a failing client protocol aborts its transport with the error in connection_lost", function()
    local server, port = echo_server()
    loop():set_exception_handler(function() end)
    local tr, p = connect(port, recorder({ data_received = function() error("bad") end }))
    tr:write("x")
    p:lost()
    assert.matches("bad", tostring(p.err))
    server:close()
  end)

  it_fds("reset by peer mid-read: connection_lost(ConnectionResetError)", function()
    local peer
    local server = loop():create_server(function()
      return { connection_made = function(_, t) peer = t; t:pause_reading() end }
    end, "127.0.0.1", 0)
    local tr, p = connect(server.sockets[1]:getsockname()[2], recorder())
    tr:write("unread data makes close() send a RST")
    while not peer do aio.sleep(0) end
    aio.sleep(0.05)
    peer:close()
    p:lost()
    assert.is_true(aio.iserror(p.err, aio.ConnectionResetError), tostring(p.err))
    assert.are.equal(104, p.err.errno)
    server:close()
  end)

  it_fds("EPIPE on write: the connection is lost with a ConnectionError, never SIGPIPE", function()
    local peer
    local server = loop():create_server(function()
      return { connection_made = function(_, t) peer = t; t:abort() end }
    end, "127.0.0.1", 0)
    local tr, p = connect(server.sockets[1]:getsockname()[2], recorder({ keep_open = true }))
    p.eof_received = function() return true end -- stay open to keep writing
    while not p.lost_fut:done() do
      pcall(tr.write, tr, string.rep("p", 1000))
      aio.sleep(0.01)
    end
    assert.is_true(aio.iserror(p.err, aio.ConnectionError), tostring(p.err))
    assert.is_true(p.err.errno == 32 or p.err.errno == 104)
    assert.is_not_nil(peer)
    server:close()
  end)

  it_fds("a cancelled connect closes its fd once; a socket reusing the fd sees no old watcher", function()
    -- A listener that never accepts, with a full backlog: new connects stay in progress.
    local lsock = aio.socket.socket("inet")
    lsock:bind({ "127.0.0.1", 0 })
    lsock:listen(0)
    local port = lsock:getsockname()[2]
    local fillers = {}
    local task
    for i = 1, 8 do
      local s = aio.socket.socket("inet")
      fillers[i] = s
      task = aio.create_task(function() loop():sock_connect(s, { "127.0.0.1", port }) end)
      aio.sleep(0.02)
      if not task:done() then break end
    end
    assert.is_false(task:done(), "the backlog never filled up")
    local before = socket_count()
    local t = aio.create_task(connect, port, recorder())
    aio.sleep(0.02)
    local fd_during = socket_count()
    assert.are.equal(before + 1, fd_during)
    t:cancel()
    assert.is_false(pcall(aio.await, t))
    assert.is_true(t:cancelled())
    assert.are.equal(before, socket_count())
    -- the same fd number, reused: a socketpair's end gets no stray wake-ups
    local a, b = aio.socket.socketpair()
    local got = {}
    local tr = loop():connect_accepted_socket(function()
      return { data_received = function(_, d) got[#got + 1] = d end }
    end, a)
    b:send("only this")
    for _ = 1, 5 do aio.sleep(0.01) end
    assert.are.same({ "only this" }, got)
    tr:close()
    b:close()
    task:cancel()
    pcall(aio.await, task)
    for _, s in ipairs(fillers) do s:close() end
    lsock:close()
  end)

  it("loop:close() closes transports and servers left open", function()
    local before = socket_count()
    local l = aio.new_event_loop()
    l:run_until_complete(function()
      local server = loop():create_server(function() return {} end, "127.0.0.1", 0)
      connect(server.sockets[1]:getsockname()[2], {})
    end)
    assert.is_true(socket_count() > before)
    l:close()
    assert.are.equal(before, socket_count())
  end)

  it_fds("Server: sockets, is_serving, start_serving, close, wait_closed, get_loop, <close>", function()
    local server = loop():create_server(function() return {} end, "127.0.0.1", 0,
      { start_serving = false, backlog = 5, reuse_address = true, reuse_port = true })
    assert.is_false(server:is_serving())
    assert.are.equal(loop(), server:get_loop())
    local port = server.sockets[1]:getsockname()[2]
    local made = loop():create_future()
    server._factory = function() return { connection_made = function() made:set_result() end } end
    server:start_serving()
    assert.is_true(server:is_serving())
    local tr = connect(port, {})
    aio.wait_for(made, 5)
    tr:close()
    do
      local s <close> = server
    end
    assert.is_false(server:is_serving())
    server:wait_closed()
    assert.is_false(pcall(connect, port, {}))
  end)

  it_fds("serve_forever runs until cancelled, then the server is closed", function()
    local server, port = echo_server({ start_serving = false })
    local t = aio.create_task(server.serve_forever, server)
    aio.sleep(0)
    assert.is_true(server:is_serving())
    local tr, p = connect(port, recorder())
    tr:write("x")
    p:wait(1)
    tr:close()
    t:cancel()
    assert.is_false(pcall(aio.await, t))
    assert.is_false(server:is_serving())
    server:wait_closed()
    p:lost()
  end)

  it_fds("create_server with sock= uses that listening socket", function()
    local s = aio.socket.socket("inet")
    s:bind({ "127.0.0.1", 0 })
    local server = loop():create_server(function()
      return { connection_made = function(_, tr) tr:write("via sock"); tr:close() end }
    end, nil, nil, { sock = s })
    local _, p = connect(s:getsockname()[2], recorder())
    p:lost()
    assert.are.equal("via sock", p.received)
    server:close()
  end)

  it_fds("every fd aloop opens is close-on-exec (listeners, accepted, connected, UDP, pairs, pipes)", function()
    local server, port = echo_server()
    local tr, p = connect(port, recorder())
    tr:write("x")
    p:wait(1)
    local udp = loop():create_datagram_endpoint(function() return {} end, { local_addr = { "127.0.0.1", 0 } })
    local a, b = aio.socket.socketpair()
    local pipe = io.popen("true")
    local ptr = loop():connect_read_pipe(function() return {} end, pipe)
    local checked = 0
    local ls = io.popen("ls -l /proc/" .. H.pid() .. "/fd")
    for line in ls:lines() do
      local fd, target = line:match(" (%d+) %-> (.*)$")
      if fd and (target:match("^socket:") or (target:match("^pipe:") and tonumber(fd) == ptr:get_extra_info("pipe"):fileno())) then
        local f = io.open("/proc/" .. H.pid() .. "/fdinfo/" .. fd)
        local flags = f and f:read("a"):match("flags:%s*(%d+)")
        if f then f:close() end
        if flags then
          checked = checked + 1
          assert.are_not.equal(0, tonumber(flags, 8) & tonumber("2000000", 8), "fd " .. fd .. " lacks O_CLOEXEC")
        end
      end
    end
    ls:close()
    assert.is_true(checked >= 7, "checked " .. checked .. " fds")
    ptr:close()
    pipe:close()
    a:close()
    b:close()
    udp:close()
    tr:close()
    p:lost()
    server:close()
  end)

  it("EMFILE on accept: reported once, no busy loop, serving again once fds are free", function()
    local out, err, code = H.capture("ulimit -n 40; " .. H.bin .. " " .. H.q(H.root .. "/spec/fixtures/emfile.lua"))
    assert.are.equal(0, code, out .. err)
    assert.are.equal("served\n", out)
  end)

  it_fds("1,000 concurrent connections", function()
    local limit = tonumber((H.sh("ulimit -n"))) or 1024
    local n = math.min(1000, (limit - 100) // 2)
    local server, port = echo_server({ backlog = 1024 })
    local done, left = loop():create_future(), n
    local clients = {}
    for i = 1, n do
      local msg = "client " .. i
      clients[i] = loop():create_connection(function()
        return {
          data_received = function(self, d)
            self.got = (self.got or "") .. d
            if self.got == msg then
              left = left - 1
              if left == 0 then done:set_result() end
            end
          end,
        }
      end, "127.0.0.1", port)
      clients[i]:write(msg)
    end
    aio.wait_for(done, 30)
    for i = 1, n do clients[i]:close() end
    server:close()
    aio.sleep(0)
    aio.sleep(0)
  end)
end)
