-- callgrind driver for the stream path (not a peer benchmark): N round trips of SIZE bytes between
-- an aio.open_connection client and an aio.start_server echo task, both in this process.
-- Usage: valgrind --tool=callgrind build/aloop bench/streams_cg.lua N SIZE (N=0 gives the baseline)
local aio = require "aloop"
local N = tonumber(arg[1]) or 20000
local SIZE = tonumber(arg[2]) or 64
aio.run(function()
  local server = aio.start_server(function(r, w)
    while true do
      local d = r:read(65536)
      if d == "" then break end
      w:write(d); w:drain()
    end
    w:close()
  end, "127.0.0.1", 0)
  local port = server.sockets[1]:getsockname()[2]
  local r, w = aio.open_connection("127.0.0.1", port)
  local msg = string.rep("x", SIZE)
  for i = 1, N do
    w:write(msg); w:drain()
    local got = 0
    while got < SIZE do got = got + #r:read(65536) end
  end
  w:close()
  server:close()
end)
