-- Seed 000 (asyncio docs digest), "UDP echo server protocol": one protocol instance serves every
-- client, echoing each datagram to its sender.
-- Usage: udp_echo_server.lua [port=9999] [datagrams]  (port 0: the OS picks one; with
-- `datagrams`, the server stops after echoing that many, or after 30 s)
local aio = require "aloop"
io.stdout:setvbuf("line")

local port = tonumber(arg[1]) or 9999
local limit = tonumber(arg[2])
local loop = aio.get_event_loop()
local count = 0

local EchoServerProtocol = {}
EchoServerProtocol.__index = EchoServerProtocol

function EchoServerProtocol:connection_made(transport)
  self.transport = transport
end

function EchoServerProtocol:datagram_received(data, addr)
  print(("Received '%s' from %s"):format(data, tostring(addr)))
  print(("Send '%s' to %s"):format(data, tostring(addr)))
  self.transport:sendto(data, addr)
  count = count + 1
  if limit and count >= limit then loop:stop() end
end

-- One protocol instance will be created to serve all client requests
local transport = loop:run_until_complete(loop.create_datagram_endpoint, loop,
  function() return setmetatable({}, EchoServerProtocol) end, { local_addr = { "127.0.0.1", port } })
print("Starting UDP server on " .. tostring(transport:get_extra_info("sockname")))
if limit then loop:call_later(30, loop.stop, loop) end
pcall(loop.run_forever, loop)
transport:close()
loop:run_until_complete(aio.sleep, 0) -- let connection_lost run
loop:close()
