-- Seed 004 (asyncio notes, Chinese), "asyncio protocol": a twisted-like protocol that answers
-- every request with a fixed HTTP reply and closes; on EOF it half-closes with write_eof.
-- Usage: http_reply_protocol.lua [port=8080] [clients]  (port 0: the OS picks one; with
-- `clients`, the server stops after that many connections, or after 30 s)
local aio = require "aloop"
io.stdout:setvbuf("line")

local port = tonumber(arg[1]) or 8080
local clients = tonumber(arg[2])
local loop = aio.get_event_loop()
local lost = 0

local Protocol = {}
Protocol.__index = Protocol

function Protocol:connection_made(transport)
  self.transport = transport
end

function Protocol:data_received()
  self.transport:write("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\nHello xxx")
  self.transport:close()
end

function Protocol:eof_received()
  if self.transport:can_write_eof() then self.transport:write_eof() end
end

function Protocol:connection_lost(exc)
  print("connection lost", exc)
  lost = lost + 1
  if clients and lost >= clients then loop:stop() end
end

local server = loop:run_until_complete(loop.create_server, loop,
  function() return setmetatable({}, Protocol) end, "127.0.0.1", port)
print("Serving on " .. tostring(server.sockets[1]:getsockname()))
if clients then loop:call_later(30, loop.stop, loop) end
pcall(loop.run_forever, loop)
server:close()
loop:close()
