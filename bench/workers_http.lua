-- A tiny HTTP/1.1 hello server (keep-alive, pipelining) for bench/workers_run: a protocol that
-- answers every complete request head with a fixed 200. Not an HTTP implementation (no bodies,
-- no parsing beyond the blank line ending a head). Prints "listening PORT" once serving.
-- Usage: build/aloop [--workers N] bench/workers_http.lua [PORT]   (default 0: the OS picks)
local aio = require "aloop"

local port = tonumber(arg[1]) or 0
local RESPONSE = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\n" ..
  "Hello, World!\n"

local Hello = {}
Hello.__index = Hello
function Hello:connection_made(transport)
  self.transport, self.pending = transport, ""
end
function Hello:data_received(data)
  local buf, from, n = self.pending .. data, 1, 0
  while true do
    local e = buf:find("\r\n\r\n", from, true)
    if not e then break end
    n, from = n + 1, e + 4
  end
  self.pending = buf:sub(from)
  if n > 0 then self.transport:write(RESPONSE:rep(n)) end
end

aio.run(function()
  local loop = aio.get_running_loop()
  local srv = loop:create_server(function() return setmetatable({}, Hello) end, "127.0.0.1",
    port, { backlog = 1024 })
  io.stdout:write("listening ", srv.sockets[1]:getsockname()[2], "\n")
  io.stdout:flush()
  srv:serve_forever()
end)
