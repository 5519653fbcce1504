-- Seed 003 (asyncio slides), "Echo Server": an EchoProtocol instance per client echoes what
-- it receives and reports the connection's end.
-- Usage: echo_server_protocol.lua [port=1234] [clients]  (port 0: the OS picks one; with
-- `clients`, the server stops after that many connections closed, or after 30 s)
local aio = require "aloop"
io.stdout:setvbuf("line")

local port = tonumber(arg[1]) or 1234
local clients = tonumber(arg[2])
local loop = aio.get_event_loop()
local closed = 0

local EchoProtocol = {}
EchoProtocol.__index = EchoProtocol

function EchoProtocol:connection_made(transport)
  print("Client connected")
  self.transport = transport
end

function EchoProtocol:data_received(data)
  print(("Received data: '%s'"):format((data:gsub("\n", "\\n"))))
  self.transport:write(data)
end

function EchoProtocol:connection_lost(exc)
  print("Connection closed", exc)
  closed = closed + 1
  if clients and closed >= clients then loop:stop() end
end

local server = loop:run_until_complete(loop.create_server, loop,
  function() return setmetatable({}, EchoProtocol) end, "localhost", port)
print("Server started on port " .. server.sockets[1]:getsockname()[2])
if clients then loop:call_later(30, loop.stop, loop) end
pcall(loop.run_forever, loop)
server:close()
loop:close()
