-- Seed 004 (asyncio notes), the selector-based echo server ("a few dozen lines of an
-- event-driven echo server"): callbacks on readiness with loop:add_reader, non-blocking socket
-- objects, no tasks. Usage: selector_echo_server.lua [port=8081] [clients]  (port 0: the OS
-- picks one; with `clients`, it stops after that many connections closed, or after 30 s)
local aio = require "aloop"
io.stdout:setvbuf("line")

local port = tonumber(arg[1]) or 8081
local clients = tonumber(arg[2])
local loop = aio.get_event_loop()
local closed = 0

local function read(conn)
  local data = conn:recv(1024)
  if data == nil then return end -- spurious wake-up
  if data ~= "" then
    print("echoing", #data, "bytes")
    conn:send(data) -- small echoes fit in the socket buffer
    return
  end
  print("closing", conn:fileno())
  loop:remove_reader(conn)
  conn:close()
  closed = closed + 1
  if clients and closed >= clients then loop:stop() end
end

local function accept(sock)
  local conn, addr = sock:accept()
  if not conn then return end
  print("accepted", conn:fileno(), "from", addr)
  loop:add_reader(conn, read, conn)
end

local sock = aio.socket.socket("inet")
sock:setoption("reuse_address", true)
sock:bind({ "127.0.0.1", port })
sock:listen(100)
print("Listening on " .. tostring(sock:getsockname()))
loop:add_reader(sock, accept, sock)
if clients then loop:call_later(30, loop.stop, loop) end
pcall(loop.run_forever, loop)
loop:remove_reader(sock)
sock:close()
loop:close()
