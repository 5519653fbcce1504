-- Seed 000 (asyncio docs digest), "TCP echo server protocol": a protocol instance per client
-- prints what it receives, echoes it back and closes the connection.
-- Usage: tcp_echo_server_protocol.lua [port=8888] [clients]  (port 0: the OS picks one; with
-- `clients`, the server stops after serving that many, or after 30 s)
local aio = require "aloop"
io.stdout:setvbuf("line")

local port = tonumber(arg[1]) or 8888
local clients = tonumber(arg[2])
local loop = aio.get_event_loop()
local served = 0

local EchoServerClientProtocol = {}
EchoServerClientProtocol.__index = EchoServerClientProtocol

function EchoServerClientProtocol:connection_made(transport)
  print("Connection from " .. tostring(transport:get_extra_info("peername")))
  self.transport = transport
end

function EchoServerClientProtocol:data_received(data)
  print(("Data received: '%s'"):format(data))
  print(("Send: '%s'"):format(data))
  self.transport:write(data)
  print("Close the client socket")
  self.transport:close()
end

function EchoServerClientProtocol:connection_lost()
  served = served + 1
  if clients and served >= clients then loop:stop() end
end

-- Each client connection will create a new protocol instance
local server = loop:run_until_complete(loop.create_server, loop, function()
  return setmetatable({}, EchoServerClientProtocol)
end, "127.0.0.1", port)

-- Serve requests until Ctrl+C is pressed (or until `clients` were served)
print("Serving on " .. tostring(server.sockets[1]:getsockname()))
if clients then loop:call_later(30, loop.stop, loop) end
pcall(loop.run_forever, loop)

-- Close the server
server:close()
loop:run_until_complete(server.wait_closed, server)
loop:close()
