-- One HTTP connection's byte stream as parsed events (server and client side alike): the
-- transport's C read buffer is taken whole and parsed in one C call (parser.c); next() hands
-- out the events in order, refilling when they run out. Responses are queued with send() and
-- written in one write when the peer has no more pipelined requests waiting.
-- Over TLS a peer's EOF without close_notify is a clean EOF when no message is in progress
-- (the framing says the last one ended), the ConnectionResetError otherwise (a truncation).
local aio = require "aloop"
local core = require "aloop.core"

local await = core.await_future
local buf_read, buf_wait = core._reader_methods.read, core._reader_methods.wait
local buf_buffered = core._reader_methods.buffered
local READ_ALL = 1 << 30
local READ_LIMIT = 65536 -- what the C buffer holds before the transport stops reading
                         -- (session.lua's connection_made asks for the same)

local Wire = {}
Wire.__index = Wire

-- Wire.new(tr, parser, wait): tr becomes a stream (its C read buffer, tr:_reader); wait(wire,
-- buf_wait, buf) calls buf_wait(buf), which parks the task on the buffer until bytes come (the
-- client puts its read timeout around it; the server's timeouts are a sweep over its connections).
function Wire.new(tr, parser, wait)
  return setmetatable({ tr = tr, buf = tr:_reader(READ_LIMIT), parser = parser, wait = wait,
    ev = {}, ei = 1, en = 0, out = nil, tls = tr:get_extra_info("sslcontext") ~= nil }, Wire)
end

-- The events are there without reading?
function Wire:pending() return self.ei <= self.en end

-- Nothing received is left to handle: no parsed event, no partial message, no byte buffered.
function Wire:quiet()
  return self.ei > self.en and self.parser:idle() and buf_buffered(self.buf) == 0
end

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

-- Bytes from the buffer: waits first (under the caller's timeouts, through self.wait) when it
-- is empty, so buf_read returns at once: the bytes, or "" at the end.
local function wait_and_read(self, buf)
  if buf_buffered(buf) == 0 then
    self:flush()
    self.wait(self, buf_wait, buf)
  end
  return buf_read(buf, READ_ALL)
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
    local data
    if self.tls then
      local ok
      ok, data = pcall(wait_and_read, self, buf)
      if not ok then
        -- TLS without close_notify: an EOF when the framing says the last message ended
        if not (parser:idle() and aio.iserror(data, aio.ConnectionResetError)) then
          error(data, 0)
        end
        data = ""
      end
    else
      data = wait_and_read(self, buf)
    end
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

return Wire
