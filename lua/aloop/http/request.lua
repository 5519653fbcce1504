-- The server's Request: the head table the C parser built (method, target, path, query_string,
-- version, keep_alive, the raw headers, and _body when the whole body came with the head) with
-- these methods. The body is read on demand from the connection (req:chunks() streams it);
-- headers, query and remote are built on first use.
local json = require "aloop.json"
local url = require "aloop.http.url"
local errors = require "aloop.http.errors"

local Request = { __name = "aloop.http.Request" }

local methods = {}

local core = require "aloop.core"
local headers = require "aloop.http.headers"

local build_headers = core._http.headers
local headers_mt = headers.mt

local lazy = {
  headers = function(req) return build_headers(rawget(req, "_raw") or "", headers_mt) end,
  query = function(req) return url.parse_query(rawget(req, "query_string")) end,
  params = function() return {} end, -- a static route's (the router sets a dynamic route's)
  remote = function(req)
    local conn = rawget(req, "_conn")
    return conn and conn.tr:get_extra_info("peername")
  end,
}

Request.__index = function(req, k)
  local m = methods[k]
  if m ~= nil then return m end
  local f = lazy[k]
  if f then
    local v = f(req)
    rawset(req, k, v)
    return v
  end
end

-- The next piece of the body, or nil at its end.
local function next_piece(req)
  if req._body ~= nil then
    if req._taken then return nil end
    req._taken = true
    local b = req._body
    if b ~= "" then return b end
    return nil
  end
  if req._body_done then return nil end
  local ev = req._conn:next_body(req)
  if ev == true then
    req._body_done = true
    return nil
  end
  return ev
end

-- for chunk in req:chunks() do ... end: the body as it arrives (memory stays bounded)
function methods:chunks()
  return next_piece, self
end

-- req:body() -> the whole body (read once, then kept)
function methods:body()
  local content = rawget(self, "_content")
  if content then return content end
  if self._body ~= nil then
    content = self._body
  else
    local parts = {}
    for piece in next_piece, self do parts[#parts + 1] = piece end
    content = table.concat(parts)
  end
  self._content = content
  return content
end
methods.text = methods.body

-- req:json() -> the decoded body; malformed JSON answers 400
function methods:json()
  local ok, v = pcall(json.decode, self:body())
  if not ok then error(errors.HTTPError(400, "malformed JSON body"), 2) end
  return v
end

-- req:form() -> the fields of an application/x-www-form-urlencoded body
function methods:form()
  return url.parse_query(self:body())
end

-- req:respond{status=, headers=} -> a streaming Writer (chunked unless content-length is given)
function methods:respond(t)
  return self._conn:stream(self, t or {})
end

function Request.__tostring(req)
  return ("<aloop.http.Request %s %s>"):format(req.method, req.target)
end

return Request
