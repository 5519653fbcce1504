-- Seed 000 (asyncio reference digest), "9. Develop with asyncio": close transports and event
-- loops. A connection nobody closed before its loop closes is reported as a resource warning in
-- debug mode (ALOOP_DEBUG=1), with where it was opened; the loop then closes it.
local aio = require "aloop"

local loop = aio.get_event_loop()
local server = loop:run_until_complete(aio.start_server, function(reader, writer)
  print("server got: " .. reader:readline():gsub("\n", ""))
  writer:close()
end, "127.0.0.1", 0)
local port = server.sockets[1]:getsockname()[2]

local reader, writer = loop:run_until_complete(aio.open_connection, "127.0.0.1", port)
writer:write("hello\n") -- the client's writer is never closed
loop:run_until_complete(reader.read, reader) -- until the server hangs up
server:close()
loop:run_until_complete(server.wait_closed, server)
loop:close() -- debug mode: "unclosed <aloop.Transport ...>"
print("closed")
