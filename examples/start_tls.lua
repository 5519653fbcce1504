-- STARTTLS: a connection that begins in plain text and switches to TLS, as SMTP, IMAP or
-- PostgreSQL do. The server greets in clear, the client asks "STARTTLS", both ends call
-- writer:start_tls on the same connection, and the rest of the talk is encrypted.
-- Usage: start_tls.lua CERTFILE KEYFILE CAFILE (the server's certificate must name "localhost")
local aio = require "aloop"

local certfile, keyfile, cafile = arg[1], arg[2], arg[3]
if not cafile then error("usage: start_tls.lua CERTFILE KEYFILE CAFILE") end

local function serve(reader, writer)
  writer:write("220 ready\n")
  local line = reader:readline()
  print("server got: " .. line:gsub("\n$", ""))
  writer:write("220 go ahead\n")
  local ctx = aio.ssl.create_default_context("server")
  ctx:load_cert_chain(certfile, keyfile)
  writer:start_tls(ctx, { server_side = true })
  line = reader:readline()
  print(("server got over %s: %s"):format(writer:get_extra_info("tls_version"), line:gsub("\n$", "")))
  writer:write("250 secret received\n")
  writer:close()
end

local function main()
  local server = aio.start_server(serve, "127.0.0.1", 0)
  local port = server.sockets[1]:getsockname()[2]
  local reader, writer = aio.open_connection("127.0.0.1", port)
  print("client got: " .. reader:readline():gsub("\n$", ""))
  writer:write("STARTTLS\n")
  print("client got: " .. reader:readline():gsub("\n$", ""))
  local ctx = aio.ssl.create_default_context()
  ctx:load_verify_locations(cafile)
  writer:start_tls(ctx, { server_hostname = "localhost" })
  print("client verified: " .. writer:get_extra_info("peercert").subject.commonName)
  writer:write("the password\n")
  print("client got: " .. reader:readline():gsub("\n$", ""))
  writer:close()
  writer:wait_closed()
  server:close()
  server:wait_closed()
end

aio.run(main)
