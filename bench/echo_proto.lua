-- aloop's protocol echo server for the peers' echo benchmark: data_received -> transport:write.
-- Usage: build/aloop bench/echo_proto.lua PORT   (the port is the last argument; runs until killed)
local aio = require "aloop"

local port = assert(tonumber(arg[#arg]), "usage: echo_proto.lua PORT")
local loop = aio.get_event_loop()

local Echo = {}
Echo.__index = Echo
function Echo:connection_made(transport) self.transport = transport end
function Echo:data_received(data) self.transport:write(data) end

loop:run_until_complete(loop.create_server, loop, function() return setmetatable({}, Echo) end,
  "127.0.0.1", port, { backlog = 1024 })
loop:run_forever()
