-- Seed 000 (asyncio docs digest), "TCP echo server using streams": start_server runs
-- handle_echo as a task per client with a StreamReader and a StreamWriter.
-- Usage: tcp_echo_server_streams.lua [port=8888] [clients]  (port 0: the OS picks one; with
-- `clients`, the server stops after serving that many, or after 30 s)
local aio = require "aloop"
io.stdout:setvbuf("line")

local port = tonumber(arg[1]) or 8888
local clients = tonumber(arg[2])
local loop = aio.get_event_loop()
local served = 0

local function handle_echo(reader, writer)
  local data = reader:read(100)
  local addr = writer:get_extra_info("peername")
  print(("Received '%s' from %s"):format(data, tostring(addr)))
  print(("Send: '%s'"):format(data))
  writer:write(data)
  writer:drain()
  print("Close the client socket")
  writer:close()
  served = served + 1
  if clients and served >= clients then loop:stop() end
end

local server = loop:run_until_complete(aio.start_server, handle_echo, "127.0.0.1", port)

-- Serve requests until Ctrl+C is pressed (or until `clients` were served)
print("Serving on " .. tostring(server.sockets[1]:getsockname()))
if clients then loop:call_later(30, loop.stop, loop) end
pcall(loop.run_forever, loop)

-- Close the server
server:close()
loop:run_until_complete(server.wait_closed, server)
loop:close()
