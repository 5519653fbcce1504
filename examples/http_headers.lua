-- Seed 000 (asyncio docs digest), "Get HTTP headers": a HEAD request over open_connection,
-- printing the response's header lines. Plain http only (no TLS yet).
-- Usage: http_headers.lua URL   e.g. http_headers.lua http://127.0.0.1:8000/
local aio = require "aloop"

local function print_http_headers(url)
  local scheme, host, port, path = url:match("^(%a+)://([^/:]+):?(%d*)(.*)$")
  if scheme ~= "http" then error("only http:// URLs: " .. url) end
  local reader, writer = aio.open_connection(host, tonumber(port) or 80)
  local query = ("HEAD %s HTTP/1.0\r\nHost: %s\r\n\r\n"):format(path ~= "" and path or "/", host)
  writer:write(query)
  while true do
    local line = reader:readline()
    if line == "" then break end
    line = line:gsub("%s+$", "")
    if line ~= "" then print("HTTP header> " .. line) end
  end
  -- Ignore the body, close the socket
  writer:close()
end

local url = arg[1] or error("usage: http_headers.lua URL")
local loop = aio.get_event_loop()
local task = aio.ensure_future(aio.coro(print_http_headers, url))
loop:run_until_complete(task)
loop:close()
