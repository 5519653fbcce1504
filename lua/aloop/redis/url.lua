-- Redis URLs (aloop.redis.url): redis://[[user]:password@]host[:port][/db][?db=&timeout=],
-- rediss://... (TLS) and unix:///path/to/socket[?db=]: url.parse(s) returns the connection
-- options table.
local function unescape(s)
  return s and (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function number(s, what, url)
  local n = tonumber(s)
  if not n then error(("aloop.redis: bad %s in URL %q"):format(what, url), 4) end
  return n
end

local M = {}

function M.parse(url)
  if type(url) ~= "string" then error("aloop.redis: a redis:// URL expected", 3) end
  local scheme, rest = url:match("^(%a+)://(.*)$")
  if scheme ~= "redis" and scheme ~= "rediss" and scheme ~= "unix" then
    error(("aloop.redis: unsupported URL %q (redis://, rediss:// or unix://)"):format(url), 3)
  end
  local o = { ssl = scheme == "rediss" or nil }
  local query
  rest, query = rest:match("^([^?#]*)%??([^#]*)")
  local auth, hostpart = rest:match("^(.*)@(.*)$")
  if not auth then hostpart = rest end
  if auth then
    local user, pass = auth:match("^([^:]*):(.*)$")
    if user then
      o.username = user ~= "" and unescape(user) or nil
      o.password = unescape(pass)
    elseif auth ~= "" then
      o.password = unescape(auth) -- redis://secret@host (the redis-py reading)
    end
  end
  if scheme == "unix" then
    o.path = hostpart
  else
    local host, port, path = hostpart:match("^%[([^%]]+)%]:?(%d*)(.*)$")
    if not host then host, port, path = hostpart:match("^([^:/]*):?(%d*)(.*)$") end
    if not host then error(("aloop.redis: bad URL %q"):format(url), 3) end
    o.host = host ~= "" and host or "127.0.0.1"
    o.port = port ~= "" and number(port, "port", url) or 6379
    local db = path:match("^/(%d+)/?$")
    if db then o.db = number(db, "db", url)
    elseif path ~= "" and path ~= "/" then error(("aloop.redis: bad db in URL %q"):format(url), 3) end
  end
  for k, v in query:gmatch("([^&=]+)=([^&]*)") do
    if k == "db" then o.db = number(v, "db", url)
    elseif k == "timeout" or k == "connect_timeout" then o[k] = number(v, k, url)
    elseif k == "password" then o.password = unescape(v)
    elseif k == "username" then o.username = unescape(v)
    elseif k == "name" then o.name = unescape(v)
    end
  end
  o.db = o.db or 0
  return o
end

return M
