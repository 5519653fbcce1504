-- aloop.http (API.md §13; also aio.http): an HTTP/1.1 client (Session with a connection pool;
-- http.get/post/request on a default session) and server (http.App, http.serve). Parsing and
-- head serialisation are C (src/http/); this module puts the parts together.
local errors = require "aloop.http.errors"
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

local ok_client, session = pcall(require, "aloop.http.session")
if ok_client then
  http.Session = session.Session
  local default
  local function default_session()
    if not default or default.closed then default = session.Session {} end
    return default
  end
  function http.request(method, u, opts) return default_session():request(method, u, opts) end
  for _, m in ipairs { "get", "post", "put", "patch", "delete", "head" } do
    local method = m:upper()
    http[m] = function(u, opts) return default_session():request(method, u, opts) end
  end
end

return http
