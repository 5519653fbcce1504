-- Seed 002 (asyncio notebook), simple_connections.py: a stream server sends each client its
-- start time, then as many lines as the client asks for; the client prints each line after a
-- short pause (emulated processing), with times relative to the server's start.
-- Usage: simple_connections.lua server [port=1234] [clients]   (port 0: the OS picks one;
--          with `clients`, the server stops after that many, or after 30 s)
--        simple_connections.lua client [port=1234] [repetitions=3] [delay=0.2]
--        (the seed's client sleeps 1 s a line)
local aio = require "aloop"
io.stdout:setvbuf("line")

local HOST = "127.0.0.1"
local mode, port = arg[1], tonumber(arg[2]) or 1234
local start_time = aio.get_event_loop():time()

local function printer(start, ...)
  print(("%0.1f"):format(aio.get_event_loop():time() - start) .. " " .. table.concat({ ... }, " "))
end

local served, clients = 0, nil

local function handle_connection(reader, writer)
  local client_address = tostring(writer:get_extra_info("peername"))
  printer(start_time, "Client connected", client_address)
  -- Send over the server start time to get consistent timestamps
  writer:write(("%0.2f\n"):format(start_time))
  writer:drain()
  local repetitions = tonumber(reader:readline())
  printer(start_time, "Started sending to", client_address)
  for i = 0, repetitions - 1 do
    local message = ("client: %s, %d\n"):format(client_address, i)
    io.write(("%0.1f "):format(aio.get_event_loop():time() - start_time), message)
    writer:write(message)
    writer:drain()
  end
  printer(start_time, "Finished sending to", client_address)
  writer:close()
  served = served + 1
  if clients and served >= clients then aio.get_event_loop():stop() end
end

local function create_connection(repetitions, delay)
  local reader, writer = aio.open_connection(HOST, port)
  local server_start = tonumber(reader:readline())
  writer:write(repetitions .. "\n")
  writer:drain()
  for line in reader:lines() do
    -- Sleeping a little to emulate processing time and make it easier to add more
    -- simultaneous clients
    aio.sleep(delay)
    io.write(("%0.1f Got line: "):format(aio.get_event_loop():time() - server_start), line)
  end
  writer:close()
end

local loop = aio.get_event_loop()
if mode == "server" then
  clients = tonumber(arg[3])
  local server = loop:run_until_complete(aio.start_server, handle_connection, HOST, port)
  print("Serving on " .. tostring(server.sockets[1]:getsockname()))
  loop:call_later(clients and 30 or 5, loop.stop, loop) -- the seed stops after 5 s
  pcall(loop.run_forever, loop)
  server:close()
  loop:run_until_complete(server.wait_closed, server)
elseif mode == "client" then
  loop:run_until_complete(create_connection, tonumber(arg[3]) or 3, tonumber(arg[4]) or 0.2)
else
  io.stderr:write("usage: simple_connections.lua server|client [port] ...\n")
  os.exit(2)
end
loop:close()
