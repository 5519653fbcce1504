-- Seed 000 (asyncio docs digest), "TCP echo client using streams": open_connection, write,
-- read the echo, close. Usage: tcp_echo_client_streams.lua [port=8888]
local aio = require "aloop"

local port = tonumber(arg[1]) or 8888

local function tcp_echo_client(message)
  local reader, writer = aio.open_connection("127.0.0.1", port)
  print(("Send: '%s'"):format(message))
  writer:write(message)
  local data = reader:read(100)
  print(("Received: '%s'"):format(data))
  print("Close the socket")
  writer:close()
  writer:wait_closed()
end

local loop = aio.get_event_loop()
loop:run_until_complete(tcp_echo_client, "Hello World!")
loop:close()
