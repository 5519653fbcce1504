-- What a server handler returns: http.Response{status=, headers=, body=} and the shortcuts
-- http.json(v, status), http.file(path), http.redirect(url, status). A body is a string, or a
-- function returning the next piece (nil at the end), or an open file: the latter two stream.
local json = require "aloop.json"

local response = {}

local Response = { __name = "aloop.http.Response" }
Response.__index = Response
response.Response = Response

local function new(t)
  if type(t) ~= "table" then error("aloop.http.Response: a table expected", 3) end
  local status = t.status or 200
  if math.type(status) ~= "integer" or status < 100 or status > 999 then
    error("aloop.http.Response: bad status " .. tostring(status), 3)
  end
  local body = t.body
  local bt = type(body)
  if body ~= nil and bt ~= "string" and bt ~= "function" and io.type(body) ~= "file" then
    error("aloop.http.Response: body must be a string, a function or a file, got " .. bt, 3)
  end
  return setmetatable({ status = status, headers = t.headers, body = body }, Response)
end

setmetatable(Response, { __call = function(_, t) return new(t) end })

function response.is(v) return getmetatable(v) == Response end

-- json(value [, status [, headers]])
function response.json(value, status, headers)
  local h = { ["content-type"] = "application/json" }
  if headers then for k, v in pairs(headers) do h[k] = v end end
  return new { status = status or 200, headers = h, body = json.encode(value) }
end

local types = {
  html = "text/html; charset=utf-8", htm = "text/html; charset=utf-8",
  txt = "text/plain; charset=utf-8", css = "text/css", js = "text/javascript",
  json = "application/json", png = "image/png", jpg = "image/jpeg", jpeg = "image/jpeg",
  gif = "image/gif", svg = "image/svg+xml", pdf = "application/pdf", wasm = "application/wasm",
}

-- file(path [, headers]): streamed with its Content-Length; a missing file answers 404.
function response.file(path, headers)
  local f = io.open(path, "rb")
  if not f then
    local HTTPError = require("aloop.http.errors").HTTPError
    error(HTTPError(404, "no such file: " .. tostring(path)), 2)
  end
  local size = f:seek("end")
  f:seek("set", 0)
  local h = { ["content-length"] = size,
    ["content-type"] = types[(path:match("%.(%w+)$") or ""):lower()] or "application/octet-stream" }
  if headers then for k, v in pairs(headers) do h[k] = v end end
  return new { status = 200, headers = h, body = f }
end

-- redirect(url [, status = 302])
function response.redirect(url, status)
  status = status or 302
  if status < 300 or status > 399 then error("aloop.http.redirect: a 3xx status expected", 2) end
  return new { status = status, headers = { location = url }, body = "" }
end

return response
