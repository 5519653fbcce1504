-- Seed 003 (asyncio slides), "HTTP Server" (aiohttp.server): every request prints its method,
-- path and version, and is answered "Hello world!".
-- Usage: http_server.lua [port=1234] [requests]  (port 0: the OS picks one; with `requests`,
-- the server shuts down gracefully after answering that many)
local aio = require "aloop"
local http = require "aloop.http"
io.stdout:setvbuf("line")

local port = tonumber(arg[1]) or 1234
local limit = tonumber(arg[2])

aio.run(function()
  local done = aio.Event()
  local count = 0
  local srv = http.serve(function(req)
    print(("method = %q; path = %q; version = %q"):format(req.method, req.path, req.version))
    count = count + 1
    if limit and count >= limit then done:set() end
    return http.Response { headers = { ["content-type"] = "text/plain" }, body = "Hello world!\r\n" }
  end, "127.0.0.1", port)
  print("Serving on http://127.0.0.1:" .. srv:port())
  if limit then done:wait() else aio.sleep(math.huge) end
  srv:shutdown(5)
end)
