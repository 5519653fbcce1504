-- Seed 004 (asyncio notes), "curio": David Beazley's curio echo server in aloop — plain socket
-- objects and the loop's suspending socket calls (sock_accept, sock_recv, sock_sendall), a task
-- per client. Usage: curio_echo_server.lua [port=25000] [clients]  (port 0: the OS picks one;
-- with `clients`, the server stops after that many, or after 30 s)
local aio = require "aloop"
io.stdout:setvbuf("line")

local port = tonumber(arg[1]) or 25000
local clients = tonumber(arg[2])
local done = 0

local function echo_client(loop, client, addr)
  print("Connection from", addr)
  do
    local c <close> = client
    while true do
      local data = loop:sock_recv(c, 100000)
      if data == "" then break end
      loop:sock_sendall(c, data)
    end
  end
  print("Connection closed")
  done = done + 1
end

local function echo_server(address)
  local loop = aio.get_running_loop()
  local sock <close> = aio.socket.socket("inet", aio.socket.SOCK_STREAM)
  sock:setoption("reuse_address", true)
  sock:bind(address)
  sock:listen(5)
  print("Server listening at", sock:getsockname())
  local tasks = {}
  while not clients or #tasks < clients do
    local client, addr = loop:sock_accept(sock)
    tasks[#tasks + 1] = aio.create_task(echo_client, loop, client, addr)
  end
  aio.gather(table.unpack(tasks))
end

local main = clients and function(addr) aio.wait_for(aio.coro(echo_server, addr), 30) end or echo_server
aio.run(main, { "127.0.0.1", port })
