-- aloop.http's error classes: HTTPError (a status to answer, or raise_for_status on a client
-- response: .status, .response), ProtocolError (a malformed or truncated message: .partial),
-- TooManyRedirects (.history). All are aio.Error subclasses.
local aio = require "aloop"

local errors = {}

local HTTPError = aio.Error:extend("aloop.http.HTTPError")
local make = getmetatable(HTTPError).__call
-- HTTPError(status [, message [, fields]])
getmetatable(HTTPError).__call = function(cls, status, message, fields)
  if type(status) == "table" then return make(cls, status) end
  if math.type(status) ~= "integer" or status < 100 or status > 999 then
    error("aloop.http.HTTPError: a status code expected, got " .. tostring(status), 2)
  end
  local e = make(cls, message or ("HTTP " .. status), fields)
  e.status = status
  return e
end
errors.HTTPError = HTTPError
errors.ProtocolError = aio.Error:extend("aloop.http.ProtocolError")
errors.TooManyRedirects = aio.Error:extend("aloop.http.TooManyRedirects")

return errors
