-- An https:// GET with aloop.http (aiohttp's `async with session.get(url) as r` over TLS): the
-- server's certificate is verified against the system CAs (SSL_CERT_FILE names another CA file,
-- as for every OpenSSL program) and its name against the URL's host, with nothing to set up.
-- Usage: https_get.lua URL   e.g. https_get.lua https://www.example.org/
local aio = require "aloop"
local http = require "aloop.http"

local function fetch(url)
  local session <close> = http.Session()
  local r <close> = session:get(url)
  print(("%s -> %d %s"):format(r.url, r.status, r.reason))
  print("Content-Type: " .. (r.headers["content-type"] or "(none)"))
  local body = r:text()
  print(("%d bytes:"):format(#body))
  print(body)
end

local url = arg[1] or error("usage: https_get.lua URL")
aio.run(function() fetch(url) end)
