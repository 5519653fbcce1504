-- Seed 000 (asyncio docs digest), "Register an open socket to wait for data using a protocol":
-- create_connection{sock=} over one end of a socketpair; the other end sends.
local aio = require "aloop"

-- Create a pair of connected sockets
local rsock, wsock = aio.socket.socketpair()
local loop = aio.get_event_loop()

local MyProtocol = {}
MyProtocol.__index = MyProtocol

function MyProtocol:connection_made(transport)
  self.transport = transport
end

function MyProtocol:data_received(data)
  print("Received:", data)
  -- We are done: close the transport (it will call connection_lost())
  self.transport:close()
end

function MyProtocol:connection_lost()
  -- The socket has been closed, stop the event loop
  loop:stop()
end

-- Register the socket to wait for data
loop:run_until_complete(loop.create_connection, loop,
  function() return setmetatable({}, MyProtocol) end, nil, nil, { sock = rsock })

-- Simulate the reception of data from the network
loop:call_soon(wsock.send, wsock, "abc")

-- Run the event loop
loop:run_forever()

-- We are done, close sockets and the event loop
rsock:close()
wsock:close()
loop:close()
