-- Seed 000 (asyncio docs digest), "TCP echo client protocol": sends a message, prints the echo,
-- and stops the loop when the server closes the connection.
-- Usage: tcp_echo_client_protocol.lua [port=8888]
local aio = require "aloop"

local port = tonumber(arg[1]) or 8888
local loop = aio.get_event_loop()
local message = "Hello World!"

local EchoClientProtocol = {}
EchoClientProtocol.__index = EchoClientProtocol

function EchoClientProtocol:connection_made(transport)
  transport:write(self.message)
  print(("Data sent: '%s'"):format(self.message))
end

function EchoClientProtocol:data_received(data)
  print(("Data received: '%s'"):format(data))
end

function EchoClientProtocol:connection_lost()
  print("The server closed the connection")
  print("Stop the event loop")
  self.loop:stop()
end

loop:run_until_complete(loop.create_connection, loop, function()
  return setmetatable({ message = message, loop = loop }, EchoClientProtocol)
end, "127.0.0.1", port)
local guard = loop:call_later(10, loop.stop, loop) -- never wait forever for the server
loop:run_forever()
guard:cancel()
loop:close()
