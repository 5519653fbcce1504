-- Seed 000 (asyncio docs digest), "Register an open socket to wait for data using streams":
-- open_connection{sock=} over one end of a socketpair.
local aio = require "aloop"

local function wait_for_data(loop)
  -- Create a pair of connected sockets
  local rsock, wsock = aio.socket.socketpair()
  -- Register the open socket to wait for data
  local reader, writer = aio.open_connection(nil, nil, { sock = rsock })
  -- Simulate the reception of data from the network
  loop:call_soon(wsock.send, wsock, "abc")
  -- Wait for data
  local data = reader:read(100)
  -- Got data, we are done: close the socket
  print("Received:", data)
  writer:close()
  -- Close the second socket
  wsock:close()
end

local loop = aio.get_event_loop()
loop:run_until_complete(wait_for_data, loop)
loop:close()
