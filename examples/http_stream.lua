-- A streaming download: the server writes a large body piece by piece with req:respond{} (each
-- w:write waits while the client is slow, so memory stays bounded); the client reads it with
-- r:chunks(n) and prints its progress every 25 %.
-- Usage: http_stream.lua [megabytes=8]
local aio = require "aloop"
local http = require "aloop.http"
io.stdout:setvbuf("line")

local total = math.floor((tonumber(arg[1]) or 8) * 1024 * 1024)
local piece = ("0123456789abcdef"):rep(4096) -- 64 KiB

aio.run(function()
  local app = http.App {}
  app:get("/data", function(req)
    local w <close> = req:respond { headers = { ["content-type"] = "application/octet-stream" } }
    local sent = 0
    while sent < total do
      local n = math.min(#piece, total - sent)
      w:write(n == #piece and piece or piece:sub(1, n))
      sent = sent + n
    end
  end)
  local srv <close> = http.serve(app, "127.0.0.1", 0)
  local r <close> = http.get(("http://127.0.0.1:%d/data"):format(srv:port()))
  print(r.status, r.headers["transfer-encoding"])
  local got, next_mark = 0, 25
  for chunk in r:chunks(16384) do
    got = got + #chunk
    while got * 100 >= total * next_mark do
      print(("%3d%% (%d bytes)"):format(next_mark, got))
      next_mark = next_mark + 25
    end
  end
  print("done", got == total)
end)
