-- The streaming response writer (req:respond{}): w:write(data) sends a piece (a chunk, unless
-- a content-length was given) and suspends while the client is slow to read, so memory stays
-- bounded; w:close() ends the body (to-be-closed: `local w <close> = req:respond{...}`).
local core = require "aloop.core"

local chunk = core._http.chunk
local await = core.await_future

local Writer = { __name = "aloop.http.Writer" }
Writer.__index = Writer

-- Writer.new(tr, chunked, length|nil, head_only)
function Writer.new(tr, chunked, length, head_only)
  return setmetatable({ tr = tr, chunked = chunked, length = length, sent = 0,
    head_only = head_only, closed = false }, Writer)
end

function Writer:write(data)
  if self.closed then error("aloop.http: write() on a closed response writer", 2) end
  if type(data) ~= "string" then data = tostring(data) end
  local n = #data
  if n == 0 then return end
  self.sent = self.sent + n
  if self.length and self.sent > self.length then
    error(("aloop.http: more body than the content-length %d"):format(self.length), 2)
  end
  if self.head_only then return end
  local tr = self.tr
  tr:write(self.chunked and chunk(data) or data)
  local f = tr:_drain()
  if f then await(f) end
end

-- complete(): the body as sent is what the head announced (the connection may be reused)
function Writer:complete()
  return self.closed and (self.head_only or not self.length or self.sent == self.length)
end

function Writer:close()
  if self.closed then return end
  self.closed = true
  if self.chunked and not self.head_only and not self.tr:is_closing() then
    self.tr:write("0\r\n\r\n")
  end
end
Writer.__close = Writer.close

return Writer
