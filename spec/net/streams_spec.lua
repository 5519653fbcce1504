-- Streams (lua/aloop/net/streams.lua over the stream mode of src/net/transport.c): open_connection,
-- start_server, StreamReader (buffer in C, bounded by `limit`) and StreamWriter (drain with flow
-- control), with the error cases of the networking issue. Sockets are counted before and after.
local aio = require "aloop"
local H = require "spec.helper"
local N = require "spec.net_helper"
local it_fds = N.it_fds(it)

local function loop() return aio.get_running_loop() end

-- A server that writes `data` to each client (then closes, unless keep) and returns the port.
local function sender(data, keep)
  local server = aio.start_server(function(_, w)
    w:write(data)
    if not keep then w:close() end
  end, "127.0.0.1", 0)
  return server, server.sockets[1]:getsockname()[2]
end

local function echo()
  local server = aio.start_server(function(r, w)
    while true do
      local d = r:read(65536)
      if d == "" then break end
      w:write(d)
      w:drain()
    end
    w:close()
  end, "127.0.0.1", 0)
  return server, server.sockets[1]:getsockname()[2]
end

describe("streams", function()
  it_fds("echo through open_connection and start_server (a task per client)", function()
    local server, port = echo()
    local r, w = aio.open_connection("127.0.0.1", port)
    w:write("hello\n")
    w:writelines({ "a", "b", "\n" })
    w:drain()
    assert.are.equal("hello\n", r:readline())
    assert.are.equal("ab\n", r:readline())
    w:write_eof()
    assert.are.equal("", r:read(-1))
    assert.is_true(r:at_eof())
    w:close()
    w:wait_closed()
    assert.is_true(w:is_closing())
    server:close()
    server:wait_closed()
  end)

  it_fds("read(n), read(-1), readexactly, readuntil, at_eof", function()
    local server, port = sender("0123456789abc--xyz")
    local r, w = aio.open_connection("127.0.0.1", port)
    assert.are.equal("", r:read(0))
    assert.are.equal("012", r:readexactly(3))
    assert.are.equal("345", r:read(3))
    assert.are.equal("6789abc--", r:readuntil("--"))
    assert.is_false(r:at_eof())
    assert.are.equal("xyz", r:read(-1))
    assert.is_true(r:at_eof())
    assert.are.equal("", r:read(10))
    w:close()
    server:close()
  end)

  it_fds("readexactly at early EOF: IncompleteReadError with .partial and .expected", function()
    local server, port = sender("short")
    local r, w = aio.open_connection("127.0.0.1", port)
    local ok, err = pcall(r.readexactly, r, 10)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.IncompleteReadError), tostring(err))
    assert.are.equal("short", err.partial)
    assert.are.equal(10, err.expected)
    assert.is_true(r:at_eof())
    w:close()
    server:close()
  end)

  it_fds("readuntil at EOF without the separator: IncompleteReadError", function()
    local server, port = sender("no separator")
    local r, w = aio.open_connection("127.0.0.1", port)
    local ok, err = pcall(r.readuntil, r, "\r\n")
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.IncompleteReadError))
    assert.are.equal("no separator", err.partial)
    assert.is_nil(err.expected)
    w:close()
    server:close()
  end)

  it_fds("readuntil over the limit: LimitOverrunError .consumed, the buffer still usable", function()
    local server, port = sender(string.rep("a", 100) .. "|rest|")
    local r, w = aio.open_connection("127.0.0.1", port, { limit = 50 })
    local ok, err = pcall(r.readuntil, r, "|")
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.LimitOverrunError), tostring(err))
    assert.is_true(err.consumed >= 50)
    assert.are.equal(string.rep("a", 50), r:readexactly(50)) -- nothing was consumed
    assert.are.equal(string.rep("a", 50) .. "|", r:readuntil("|"))
    assert.are.equal("rest|", r:readuntil("|"))
    w:close()
    server:close()
  end)

  it_fds("readline over the limit: LimitOverrunError, the long line dropped, the next one read", function()
    local server, port = sender(string.rep("x", 200) .. "\nnext line\n")
    local r, w = aio.open_connection("127.0.0.1", port, { limit = 64 })
    local ok, err = pcall(r.readline, r)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.LimitOverrunError), tostring(err))
    assert.are.equal("next line\n", r:readline())
    assert.are.equal("", r:readline())
    w:close()
    server:close()
  end)

  it_fds("for line in reader:lines() (the last line without a newline too)", function()
    local server, port = sender("one\ntwo\nthree")
    local r, w = aio.open_connection("127.0.0.1", port)
    local lines = {}
    for line in r:lines() do lines[#lines + 1] = line end
    assert.are.same({ "one\n", "two\n", "three" }, lines)
    w:close()
    server:close()
  end)

  it_fds("a peer flooding us: reading pauses once the buffer passes the limit", function()
    local server, port = sender(string.rep("f", 4 << 20), true)
    local r, w = aio.open_connection("127.0.0.1", port, { limit = 1000 })
    for _ = 1, 10 do aio.sleep(0.01) end
    local buffered = r._buffer:buffered()
    assert.is_true(buffered > 1000 and buffered <= 1000 + 65536, "buffered " .. buffered)
    assert.are.equal(1000, #r:readexactly(1000))
    w:close()
    server:close()
  end)

  it_fds("readexactly more than the limit still completes", function()
    local server, port = sender(string.rep("g", 300000))
    local r, w = aio.open_connection("127.0.0.1", port, { limit = 1024 })
    assert.are.equal(300000, #r:readexactly(300000))
    w:close()
    server:close()
  end)

  it_fds("a slow reader: drain() keeps the write buffer near the high-water mark", function()
    local peer_r
    local server = aio.start_server(function(r, w)
      peer_r = r
      aio.sleep(0.05)
      while #r:read(4096) > 0 do aio.sleep(0) end
      w:close()
    end, "127.0.0.1", 0)
    local r, w = aio.open_connection("127.0.0.1", server.sockets[1]:getsockname()[2])
    local chunk = string.rep("s", 16384)
    local max = 0
    for _ = 1, 200 do
      w:write(chunk)
      max = math.max(max, w.transport:get_write_buffer_size())
      w:drain()
    end
    assert.is_true(max <= 65536 + #chunk, "write buffer reached " .. max)
    w:write_eof()
    assert.are.equal("", r:read(-1))
    assert.is_not_nil(peer_r)
    w:close()
    server:close()
  end)

  it_fds("two tasks awaiting drain() at once both resume", function()
    local peer
    local server = aio.start_server(function(r, w)
      peer = r
      w.transport:pause_reading()
      aio.sleep(0.05)
      w.transport:resume_reading()
      while #r:read(65536) > 0 do end
      w:close()
    end, "127.0.0.1", 0)
    local r, w = aio.open_connection("127.0.0.1", server.sockets[1]:getsockname()[2])
    local big = string.rep("d", 65536)
    while w.transport:get_write_buffer_size() <= 65536 do w:write(big) end
    local resumed = 0
    local t1 = aio.create_task(function() w:drain(); resumed = resumed + 1 end)
    local t2 = aio.create_task(function() w:drain(); resumed = resumed + 1 end)
    aio.wait_for(function() aio.gather(t1, t2) end, 5)
    assert.are.equal(2, resumed)
    w:write_eof()
    assert.are.equal("", r:read(-1))
    assert.is_not_nil(peer)
    w:close()
    server:close()
  end)

  it_fds("write after close is dropped; drain after the connection is lost raises", function()
    local server, port = sender("bye")
    local r, w = aio.open_connection("127.0.0.1", port)
    assert.are.equal("bye", r:read(-1))
    w:close()
    w:write("x") -- dropped, as asyncio does
    w:wait_closed()
    local ok, err = pcall(w.drain, w)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.ConnectionResetError), tostring(err))
    server:close()
  end)

  it_fds("reset by peer mid-read: read raises ConnectionResetError", function()
    local server = aio.start_server(function(r, w)
      w.transport:pause_reading()
      aio.sleep(0.05)
      w.transport:close() -- unread data: the kernel sends a RST
    end, "127.0.0.1", 0)
    local r, w = aio.open_connection("127.0.0.1", server.sockets[1]:getsockname()[2])
    w:write("never read")
    local ok, err = pcall(r.read, r, -1)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.ConnectionResetError), tostring(err))
    assert.are.equal(err, r:exception())
    w:close()
    server:close()
  end)

  it_fds("a peer that half-closes: we read EOF and can still write back", function()
    local server = aio.start_server(function(r, w)
      local got = r:read(-1)
      w:write("you sent " .. got)
      w:close()
    end, "127.0.0.1", 0)
    local r, w = aio.open_connection("127.0.0.1", server.sockets[1]:getsockname()[2])
    assert.is_true(w:can_write_eof())
    w:write("abc")
    w:write_eof()
    assert.is_false(pcall(w.write, w, "more"))
    assert.are.equal("you sent abc", r:read(-1))
    w:close()
    server:close()
  end)

  it_fds("writer: get_extra_info, transport, <close> closes and waits", function()
    local server, port = echo()
    local r, w = aio.open_connection("localhost", port)
    assert.are.equal(port, w:get_extra_info("peername")[2])
    assert.are.equal(w.transport:get_extra_info("socket"), w:get_extra_info("socket"))
    do
      local w2 <close> = w
      w2:write("x")
    end
    assert.is_true(w:is_closing())
    assert.are.equal("", r:read(-1))
    server:close()
  end)

  it_fds("an error in a client task is reported and aborts only that connection", function()
    local reports = {}
    loop():set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
    local server = aio.start_server(function(r, w)
      local line = r:readline()
      if line == "fail\n" then error("client handler failed") end
      w:write(line)
      w:close()
    end, "127.0.0.1", 0)
    local port = server.sockets[1]:getsockname()[2]
    local r1, w1 = aio.open_connection("127.0.0.1", port)
    local r2, w2 = aio.open_connection("127.0.0.1", port)
    w1:write("fail\n")
    assert.are.equal("", r1:read(-1))
    w2:write("fine\n")
    assert.are.equal("fine\n", r2:readline())
    assert.are.equal(1, #reports)
    assert.matches("client handler failed", tostring(reports[1].exception))
    w1:close()
    w2:close()
    server:close()
  end)

  it_fds("open_connection to a closed port raises ConnectionRefusedError", function()
    local s = aio.socket.socket("inet")
    s:bind({ "127.0.0.1", 0 })
    local port = s:getsockname()[2]
    s:close()
    local ok, err = pcall(aio.open_connection, "127.0.0.1", port)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.ConnectionRefusedError), tostring(err))
  end)

  it("reader and writer methods called on something else raise a clear error", function()
    local ok, err = pcall(aio.StreamReader.read, {}, 10)
    assert.is_false(ok)
    assert.matches("aloop.StreamReader expected", err)
    ok, err = pcall(aio.StreamReader.readline, 5)
    assert.is_false(ok)
    assert.matches("aloop.StreamReader expected, got number", err)
    ok, err = pcall(aio.StreamWriter.write, {}, "x")
    assert.is_false(ok)
    assert.matches("aloop.Transport or StreamWriter expected", err)
    ok, err = pcall(aio.StreamWriter.drain, nil)
    assert.is_false(ok)
    assert.matches("aloop.Transport or StreamWriter expected, got nil", err)
    local r = aio.StreamReader()
    ok, err = pcall(r.read, r, 0 / 0)
    assert.is_false(ok)
    assert.matches("aloop.StreamReader:read: an integer size expected", err)
  end)

  it("suspending calls outside a task say so", function()
    assert.has_error(function() aio.open_connection("127.0.0.1", 1) end)
  end)
end)
