-- Seed 000 (asyncio docs digest), "UDP echo client protocol": a datagram endpoint with a remote
-- address sends a message, prints the echo, closes, and stops the loop in connection_lost.
-- Usage: udp_echo_client.lua [port=9999]
local aio = require "aloop"

local port = tonumber(arg[1]) or 9999
local loop = aio.get_event_loop()
local message = "Hello World!"

local EchoClientProtocol = {}
EchoClientProtocol.__index = EchoClientProtocol

function EchoClientProtocol:connection_made(transport)
  self.transport = transport
  print("Send:", self.message)
  self.transport:sendto(self.message)
end

function EchoClientProtocol:datagram_received(data)
  print("Received:", data)
  print("Close the socket")
  self.transport:close()
end

function EchoClientProtocol:error_received(exc)
  print("Error received:", exc)
end

function EchoClientProtocol:connection_lost()
  print("Socket closed, stop the event loop")
  aio.get_event_loop():stop()
end

local transport = loop:run_until_complete(loop.create_datagram_endpoint, loop,
  function() return setmetatable({ message = message }, EchoClientProtocol) end,
  { remote_addr = { "127.0.0.1", port } })
local guard = loop:call_later(10, loop.stop, loop) -- a lost datagram must not hang us
loop:run_forever()
guard:cancel()
transport:close()
loop:close()
