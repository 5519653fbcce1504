-- aloop's TLS echo servers for bench/tls/run: MODE "proto" (data_received -> transport:write) or
-- "streams" (a task per connection: read(65536) / write / drain), ssl = a server context.
-- Usage: build/aloop bench/tls/echo_tls.lua MODE CERTFILE KEYFILE PORT   (runs until killed)
local aio = require "aloop"

local mode, certfile, keyfile = arg[1], arg[2], arg[3]
local port = assert(tonumber(arg[4]), "usage: echo_tls.lua MODE CERTFILE KEYFILE PORT")
local ctx = aio.ssl.create_default_context("server")
ctx:load_cert_chain(certfile, keyfile)

local Echo = {}
Echo.__index = Echo
function Echo:connection_made(transport) self.transport = transport end
function Echo:data_received(data) self.transport:write(data) end

local function echo(reader, writer)
  pcall(function() -- a client that leaves without close_notify ends this task quietly
    while true do
      local data = reader:read(65536)
      if data == "" then break end
      writer:write(data)
      writer:drain()
    end
  end)
  writer:close()
end

aio.run(function()
  local loop = aio.get_running_loop()
  local server
  if mode == "proto" then
    server = loop:create_server(function() return setmetatable({}, Echo) end, "127.0.0.1", port,
      { backlog = 1024, ssl = ctx })
  else
    server = aio.start_server(echo, "127.0.0.1", port, { backlog = 1024, ssl = ctx })
  end
  server:serve_forever()
end)
