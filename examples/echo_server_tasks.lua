-- Seed 003 (asyncio slides), "Echo Server Reloaded": start_server hands each client to
-- accept_client, which starts a task for it and keeps (reader, writer) in a table until the
-- task's done callback removes them.
-- Usage: echo_server_tasks.lua [port=1234] [clients]  (port 0: the OS picks one; with
-- `clients`, the server stops after that many clients are done, or after 30 s)
local aio = require "aloop"
io.stdout:setvbuf("line")

local port = tonumber(arg[1]) or 1234
local clients_max = tonumber(arg[2])
local loop = aio.get_event_loop()
local clients = {} -- task -> {reader, writer}
local count, done = 0, 0

local function handle_client(client_reader, client_writer)
  while true do
    local data = client_reader:readline()
    if data == "" then break end -- the client closed its side
    client_writer:write(data)
  end
  client_writer:close()
end

local function accept_client(client_reader, client_writer)
  local task = loop:create_task(handle_client, client_reader, client_writer)
  clients[task] = { client_reader, client_writer }
  count = count + 1
  print("client connected, clients: " .. count)
  task:add_done_callback(function(t)
    clients[t] = nil
    count, done = count - 1, done + 1
    print("client done, clients: " .. count)
    if clients_max and done >= clients_max then loop:stop() end
  end)
end

local server = loop:run_until_complete(aio.start_server, accept_client, "127.0.0.1", port)
print("Serving on " .. tostring(server.sockets[1]:getsockname()))
if clients_max then loop:call_later(30, loop.stop, loop) end
pcall(loop.run_forever, loop)
server:close()
loop:close()
