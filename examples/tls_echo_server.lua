-- A TLS echo server with streams: the "TCP echo server using streams" of seed 000 with
-- ssl = a server context holding a certificate chain and its key. handle_echo runs once the
-- handshake is done, and learns the TLS version from the writer.
-- Usage: tls_echo_server.lua CERTFILE KEYFILE [port=8443] [clients]  (port 0: the OS picks one;
-- with `clients`, the server stops after serving that many, or after 30 s)
local aio = require "aloop"
io.stdout:setvbuf("line")

local certfile = arg[1] or error("usage: tls_echo_server.lua CERTFILE KEYFILE [port] [clients]")
local keyfile = arg[2] or error("usage: tls_echo_server.lua CERTFILE KEYFILE [port] [clients]")
local port = tonumber(arg[3]) or 8443
local clients = tonumber(arg[4])
local loop = aio.get_event_loop()
local served = 0

local ctx = aio.ssl.create_default_context("server")
ctx:load_cert_chain(certfile, keyfile)

local function handle_echo(reader, writer)
  local data = reader:read(100)
  print(("Received '%s' over %s"):format(data, writer:get_extra_info("tls_version")))
  writer:write(data)
  writer:drain()
  print("Close the client connection")
  writer:close() -- close_notify, then the TCP close
  served = served + 1
  if clients and served >= clients then loop:stop() end
end

local server = loop:run_until_complete(aio.start_server, handle_echo, "127.0.0.1", port, { ssl = ctx })

print("Serving TLS on " .. tostring(server.sockets[1]:getsockname()))
if clients then loop:call_later(30, loop.stop, loop) end
pcall(loop.run_forever, loop)

server:close()
loop:run_until_complete(server.wait_closed, server)
loop:close()
