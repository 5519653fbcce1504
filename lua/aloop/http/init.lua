-- aloop.http (API.md §13; also aio.http): an HTTP/1.1 client (Session with a connection pool;
-- http.get/post/request on a default session) and server (http.App, http.serve). Parsing and
-- head serialisation are C (src/http/); this module puts the parts together.
local core = require "aloop.core"
local errors = require "aloop.http.errors"
local session = require "aloop.http.session"
local response = require "aloop.http.response"
local server = require "aloop.http.server"
local headers = require "aloop.http.headers"
local url = require "aloop.http.url"

local http = {
  App = require "aloop.http.app",
  serve = server.serve,
  Response = response.Response,
  json = response.json,
  file = response.file,
  redirect = response.redirect,
  HTTPError = errors.HTTPError,
  ProtocolError = errors.ProtocolError,
  TooManyRedirects = errors.TooManyRedirects,
  Headers = headers.new,
  urlencode = url.encode_query,
  parse_query = url.parse_query,
}

http.Session = session.Session

-- http.get/post/... use one default session per loop (its connections belong to that loop).
local defaults = setmetatable({}, { __mode = "k" })
local function default_session()
  local loop = core._running_loop()
  local s = loop and defaults[loop]
  if not s or s.closed then
    s = session.Session {}
    if loop then defaults[loop] = s end
  end
  return s
end
function http.request(method, u, opts) return default_session():request(method, u, opts) end
for _, m in ipairs { "get", "post", "put", "patch", "delete", "head", "options" } do
  local method = m:upper()
  http[m] = function(u, opts) return default_session():request(method, u, opts) end
end

return http
