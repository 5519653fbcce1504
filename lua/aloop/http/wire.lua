-- One HTTP connection's byte stream as parsed events (server and client side alike): the
-- transport's C read buffer is taken whole and parsed in one C call (parser.c); next() hands
-- out the events in order, refilling when they run out. Responses are queued with send() and
-- written in one write when the peer has no more pipelined requests waiting.
local core = require "aloop.core"

local await = core.await_future
local buf_read, buf_wait = core._reader_methods.read, core._reader_methods.wait
local READ_ALL = 1 << 30
local READ_LIMIT = 65536 -- what the C buffer holds before the transport stops reading
                         -- (session.lua's connection_made asks for the same)

local Wire = {}
Wire.__index = Wire

-- Wire.new(tr, parser, wait): tr becomes a stream (its C read buffer, tr:_reader); wait(wire,
-- future) awaits the buffer's read future (the client puts its read timeout there; the
-- server's timeouts are a sweep over its connections).
function Wire.new(tr, parser, wait)
  return setmetatable({ tr = tr, buf = tr:_reader(READ_LIMIT), parser = parser, wait = wait,
    ev = {}, ei = 1, en = 0, out = nil }, Wire)
end

-- The events are there without reading?
function Wire:pending() return self.ei <= self.en end

-- Writes what send() queued.
function Wire:flush()
  local out = self.out
  if out then
    self.out = nil
    if #out == 1 then self.tr:write(out[1]) else self.tr:writelines(out) end
  end
end

-- send(data): written now, or queued while more parsed requests wait (one write for a batch).
function Wire:send(data)
  local out = self.out
  if self.ei <= self.en then
    if out then out[#out + 1] = data else self.out = { data } end
    if #self.out > 64 then self:flush() end
  elseif out then
    out[#out + 1] = data
    self:flush()
  else
    self.tr:write(data)
  end
end

-- next() -> event, or nil, code, description (nil, nil at a clean EOF between messages).
function Wire:next()
  local i = self.ei
  if i <= self.en then
    self.ei = i + 1
    return self.ev[i]
  end
  if self.code then return nil, self.code, self.desc end
  local buf, parser = self.buf, self.parser
  while true do
    local data = buf_read(buf, READ_ALL)
    if data == nil then
      self:flush()
      local f = buf_wait(buf)
      if f then self.wait(self, f) end
    else
      local ev, code, desc
      if data == "" then
        if parser:idle() then return nil end
        ev, code, desc = parser:feed(nil)
        if #ev == 0 and not code then code, desc = "eof", "the connection closed mid-message" end
      else
        ev, code, desc = parser:feed(data)
      end
      self.code, self.desc = code, desc
      local n = #ev
      if n > 0 then
        self.ev, self.en, self.ei = ev, n, 2
        return ev[1]
      end
      if code then return nil, code, desc end
    end
  end
end

return Wire
