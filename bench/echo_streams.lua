-- aloop's streams echo server for the peers' echo benchmark: a task per connection,
-- read(65536) / write / drain, as the uvloop/asyncio streams servers of the harness do.
-- Usage: build/aloop bench/echo_streams.lua PORT   (the port is the last argument; runs until killed)
local aio = require "aloop"

local port = assert(tonumber(arg[#arg]), "usage: echo_streams.lua PORT")

local function echo(reader, writer)
  -- the load client ends its connections with a reset: that ends this task quietly
  pcall(function()
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
  local server = aio.start_server(echo, "127.0.0.1", port, { backlog = 1024 })
  server:serve_forever()
end)
