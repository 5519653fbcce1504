-- Seed 000 (asyncio docs digest), "Get HTTP headers", with https: a HEAD request over
-- open_connection(host, port, {ssl = true}), printing the response's header lines. ssl = true
-- verifies the server's certificate against the system CAs (SSL_CERT_FILE names another CA
-- file, as for every OpenSSL program) and its name against the URL's host.
-- Usage: https_headers.lua URL   e.g. https_headers.lua https://www.example.org/
local aio = require "aloop"

local function print_http_headers(url)
  local scheme, host, port, path = url:match("^(%a+)://([^/:]+):?(%d*)(.*)$")
  if scheme ~= "http" and scheme ~= "https" then error("an http:// or https:// URL: " .. url) end
  local reader, writer
  if scheme == "https" then
    reader, writer = aio.open_connection(host, tonumber(port) or 443, { ssl = true })
  else
    reader, writer = aio.open_connection(host, tonumber(port) or 80)
  end
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

local url = arg[1] or error("usage: https_headers.lua URL")
local loop = aio.get_event_loop()
local task = aio.ensure_future(aio.coro(print_http_headers, url))
loop:run_until_complete(task)
loop:close()
