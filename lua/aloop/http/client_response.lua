-- The client's response: status, reason, version, headers, url, history, and the body read on
-- demand (r:read(), r:text(), r:json(), r:chunks(n), r:lines(), r:save(path)). Its connection
-- goes back to the pool once the body was read to the end; closing it earlier closes the
-- connection instead (no half-read connection is ever reused).
local json = require "aloop.json"
local errors = require "aloop.http.errors"

local ClientResponse = { __name = "aloop.http.ClientResponse" }
ClientResponse.__index = ClientResponse

-- new(head, conn, session, url)
function ClientResponse.new(head, conn, session, u)
  local r = setmetatable({ status = head.status, reason = head.reason, version = head.version,
    headers = head.headers, url = u, history = {}, _head = head, _conn = conn,
    _session = session }, ClientResponse)
  if head._body ~= nil then r:_finish() end
  return r
end

-- The body is read: the connection goes back to the pool (or is closed).
function ClientResponse:_finish()
  self._eof = true
  local conn = self._conn
  if conn then
    self._conn = nil
    local wire = conn.wire
    local reusable = self._head.keep_alive and not wire.code and not wire:pending()
    self._session:_release(conn, reusable)
  end
end

-- The next piece of the body, or nil at its end.
local function next_piece(self)
  local head = self._head
  if head._body ~= nil then
    if self._taken then return nil end
    self._taken = true
    local b = head._body
    if b ~= "" then return b end
    return nil
  end
  if self._eof then return nil end
  local conn = self._conn
  if not conn then error("aloop.http: the response was closed before its body was read", 3) end
  local ev, code, desc = conn.wire:next()
  if ev == true then
    self:_finish()
    return nil
  end
  if type(ev) ~= "string" then
    self:close()
    error(errors.ProtocolError(("response body incomplete: %s"):format(desc or "connection closed"),
      { partial = true }), 0)
  end
  return ev
end

-- r:read() -> the whole body (kept: a second read returns it again)
function ClientResponse:read()
  if self._content then return self._content end
  local parts = {}
  for piece in next_piece, self do parts[#parts + 1] = piece end
  self._content = table.concat(parts)
  return self._content
end
ClientResponse.text = ClientResponse.read

function ClientResponse:json()
  return json.decode(self:read())
end

-- for chunk in r:chunks(n) do ... end: pieces of at most n bytes (default: as they arrive)
function ClientResponse:chunks(n)
  if not n then return next_piece, self end
  local buf, pos = "", 1
  return function()
    while #buf - pos + 1 < n do
      local piece = next_piece(self)
      if not piece then break end
      buf, pos = buf:sub(pos) .. piece, 1
    end
    if pos > #buf then return nil end
    local out = buf:sub(pos, pos + n - 1)
    pos = pos + #out
    return out
  end
end

-- for line in r:lines() do ... end: lines without their "\n" ("\r\n" too)
function ClientResponse:lines()
  local buf, done = "", false
  return function()
    while true do
      local i = buf:find("\n", 1, true)
      if i then
        local line = buf:sub(1, i - 1):gsub("\r$", "")
        buf = buf:sub(i + 1)
        return line
      end
      if done then
        if buf == "" then return nil end
        local line = buf
        buf = ""
        return line
      end
      local piece = next_piece(self)
      if piece then buf = buf .. piece else done = true end
    end
  end
end

-- r:save(path_or_file) -> bytes written
function ClientResponse:save(dest)
  local f, own = dest, false
  if type(dest) == "string" then
    f = assert(io.open(dest, "wb"))
    own = true
  end
  local n = 0
  local ok, err = pcall(function()
    for piece in next_piece, self do
      assert(f:write(piece))
      n = n + #piece
    end
  end)
  if own then f:close() end
  if not ok then error(err, 0) end
  return n
end

-- r:raise_for_status(): HTTPError for 4xx and 5xx
function ClientResponse:raise_for_status()
  if self.status >= 400 then
    error(errors.HTTPError(self.status, ("%d %s for %s"):format(self.status, self.reason or "",
      self.url), { response = self }), 2)
  end
  return self
end

-- close(): back to the pool when the body was read, else the connection is closed
function ClientResponse:close()
  local conn = self._conn
  if conn then
    self._conn = nil
    self._session:_release(conn, false)
  end
end
ClientResponse.__close = ClientResponse.close

function ClientResponse:__tostring()
  return ("<aloop.http.ClientResponse %d %s %s>"):format(self.status, self.reason or "", self.url)
end

return ClientResponse
