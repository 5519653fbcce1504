-- Interoperability: aloop's transports and streams against real peers on 127.0.0.1 — Python's
-- asyncio (server and client), socat and nc, and a second aloop process. Peers run as child
-- processes; a task waits for their output through the loop (add_reader on the pipe).
local aio = require "aloop"
local core = require "aloop.core"
local H = require "spec.helper"
local it_fds = require("spec.net_helper").it_fds(it)

local function loop() return aio.get_running_loop() end

-- A child process running a shell command (stderr merged); python3/socat/nc get no LD_PRELOAD
-- (under ASan the sanitizer runtimes are preloaded for aloop only).
local function spawn(cmd) return assert(io.popen("(" .. cmd .. ") 2>&1", "r")) end
local function foreign(cmd) return "exec env -u LD_PRELOAD sh -c " .. H.q(cmd) end

-- Inside a task: the rest of a child's output, read as the pipe becomes readable, until EOF.
local function output(p)
  local chunks = {}
  while true do
    local fut = loop():create_future()
    loop():add_reader(p, function() if not fut:done() then fut:set_result() end end)
    local ok, err = pcall(aio.wait_for, fut, 20)
    loop():remove_reader(p)
    if not ok then error(err, 0) end
    local d = core._fd_read(p)
    if d == nil then break end
    chunks[#chunks + 1] = d
  end
  p:close()
  return table.concat(chunks)
end

local PY_ECHO_SERVER = [[
import asyncio, sys
async def main():
    left = int(sys.argv[1])
    done = asyncio.Event()
    async def handle(r, w):
        nonlocal left
        while True:
            data = await r.read(65536)
            if not data:
                break
            w.write(data)
            await w.drain()
        w.close()
        left -= 1
        if left == 0:
            done.set()
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.wait_for(done.wait(), 30)
    srv.close()
    print("python server done", flush=True)
asyncio.run(main())
]]

local PY_CLIENT = [[
import asyncio, sys
async def main():
    r, w = await asyncio.open_connection("127.0.0.1", int(sys.argv[1]))
    payload = b"0123456789" * 20000 + b"\n"
    w.write(payload)
    await w.drain()
    w.write_eof()
    data = await r.read()
    print(len(data), data == payload)
    w.close()
    await w.wait_closed()
asyncio.run(main())
]]

-- An aloop echo server (protocol) that closes after the peer's EOF; returns server, port.
local function echo_server()
  local server = loop():create_server(function()
    return {
      connection_made = function(self, tr) self.tr = tr end,
      data_received = function(self, d) self.tr:write(d) end,
    }
  end, "127.0.0.1", 0)
  return server, server.sockets[1]:getsockname()[2]
end

describe("interop", function()
  it_fds("aloop protocol and streams clients against a python3 asyncio echo server", function()
    local p = spawn(foreign("python3 -c " .. H.q(PY_ECHO_SERVER) .. " 2"))
    local port = tonumber(p:read("l"))
    assert.is_number(port)
    -- streams client
    local r, w = aio.open_connection("127.0.0.1", port)
    local payload = string.rep("abcdefgh", 50000)
    w:write(payload)
    w:drain()
    w:write_eof()
    assert.are.equal(payload, r:read(-1))
    w:close()
    w:wait_closed()
    -- protocol client
    local got, lost = {}, loop():create_future()
    local tr = loop():create_connection(function()
      return {
        data_received = function(_, d) got[#got + 1] = d end,
        eof_received = function() return true end,
        connection_lost = function(_, err) lost:set_result(err) end,
      }
    end, "127.0.0.1", port)
    tr:writelines({ "line 1\n", "line 2\n" })
    tr:write_eof()
    while #table.concat(got) < 14 do aio.sleep(0.01) end
    tr:close()
    assert.is_nil(aio.wait_for(lost, 5))
    assert.are.equal("line 1\nline 2\n", table.concat(got))
    assert.are.equal("python server done\n", output(p))
  end)

  it_fds("a python3 asyncio client against an aloop echo server (200 KB, write_eof)", function()
    local server, port = echo_server()
    local out = output(spawn(foreign("python3 -c " .. H.q(PY_CLIENT) .. " " .. port)))
    assert.are.equal("200001 True\n", out)
    server:close()
  end)

  it_fds("socat and nc as clients of an aloop streams server", function()
    local server = aio.start_server(function(r, w)
      for line in r:lines() do w:write(line:upper()) end
      w:close()
    end, "127.0.0.1", 0)
    local port = server.sockets[1]:getsockname()[2]
    local socat = output(spawn(foreign(("printf 'via socat\\nsecond\\n' | socat - TCP:127.0.0.1:%d"):format(port))))
    assert.are.equal("VIA SOCAT\nSECOND\n", socat)
    local nc = output(spawn(foreign(("printf 'via nc\\n' | nc -N 127.0.0.1 %d"):format(port))))
    assert.are.equal("VIA NC\n", nc)
    server:close()
  end)

  it_fds("an aloop client talks to an nc server", function()
    local s = aio.socket.socket("inet")
    s:bind({ "127.0.0.1", 0 })
    local port = s:getsockname()[2]
    s:close() -- nc listens there now (a port just released by us)
    local p = spawn(foreign(("printf 'from nc\\n' | nc -l -N 127.0.0.1 %d"):format(port)))
    local r, w
    for _ = 1, 100 do -- until nc listens
      local ok, a, b = pcall(aio.open_connection, "127.0.0.1", port)
      if ok then r, w = a, b; break end
      assert.is_true(aio.iserror(a, aio.ConnectionRefusedError), tostring(a))
      aio.sleep(0.02)
    end
    assert.is_not_nil(w, "nc never listened")
    w:write("from aloop\n")
    w:write_eof()
    assert.are.equal("from nc\n", r:readline())
    assert.are.equal("from aloop\n", output(p))
    w:close()
  end)

  it_fds("a second aloop process: its client against our server, our client against its server", function()
    local server = aio.start_server(function(r, w)
      w:write(r:read(100))
      w:close()
    end, "127.0.0.1", 0)
    local port = server.sockets[1]:getsockname()[2]
    local out = output(spawn(H.bin .. " " .. H.q(H.root .. "/examples/tcp_echo_client_streams.lua") .. " " .. port))
    assert.are.equal("Send: 'Hello World!'\nReceived: 'Hello World!'\nClose the socket\n", out)
    server:close()
    local p = spawn(H.bin .. " " .. H.q(H.root .. "/examples/tcp_echo_server_streams.lua") .. " 0 1")
    local other = tonumber(p:read("l"):match(":(%d+)$"))
    local r, w = aio.open_connection("127.0.0.1", other)
    w:write("ping from the first process")
    assert.are.equal("ping from the first process", r:read(-1))
    w:close()
    assert.matches("^Received 'ping from the first process' from 127%.0%.0%.1:%d+\n", output(p))
  end)
end)
