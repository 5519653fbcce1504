-- A TLS echo client with streams: open_connection with ssl = a client context that trusts
-- CAFILE (the default context verifies the certificate chain and that it names "localhost").
-- Prints who the server is, sends a message and reads the echo.
-- Usage: tls_echo_client.lua CAFILE [port=8443]
local aio = require "aloop"

local cafile = arg[1] or error("usage: tls_echo_client.lua CAFILE [port]")
local port = tonumber(arg[2]) or 8443

local function tls_echo_client(message)
  local ctx = aio.ssl.create_default_context()
  ctx:load_verify_locations(cafile)
  local reader, writer = aio.open_connection("localhost", port, { ssl = ctx })
  local cert = writer:get_extra_info("peercert")
  print(("Connected to %s (issued by %s) over %s"):format(cert.subject.commonName,
    cert.issuer.commonName, writer:get_extra_info("tls_version")))
  print(("Send: '%s'"):format(message))
  writer:write(message)
  local data = reader:read(100)
  print(("Received: '%s'"):format(data))
  print("Close the connection")
  writer:close()
  writer:wait_closed()
end

local loop = aio.get_event_loop()
loop:run_until_complete(tls_echo_client, "Hello TLS!")
loop:close()
