-- http.Session (API.md §13): requests over pooled keep-alive connections. Timeouts: connect,
-- pool (waiting for a free connection), read (the longest gap between two reads: a long
-- download is never cut by it), total (the whole request, body included, when set). Redirects
-- are followed up to max_redirects (303, and 301/302 after POST, turn into GET). A request on a
-- reused connection that fails before any response byte is retried once on a new connection
-- when its method is idempotent.
local aio = require "aloop"
local core = require "aloop.core"
local Wire = require "aloop.http.wire"
local Pool = require "aloop.http.pool"
local ClientResponse = require "aloop.http.client_response"
local headers = require "aloop.http.headers"
local errors = require "aloop.http.errors"
local url = require "aloop.http.url"
local json = require "aloop.json"

local H = core._http
local await = core.await_future

local session = {}

local Session = { __name = "aloop.http.Session" }
Session.__index = Session
session.Session = Session

local IDEMPOTENT = { GET = true, HEAD = true, OPTIONS = true, PUT = true, DELETE = true, TRACE = true }
local REDIRECT = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }
local DEFAULT_TIMEOUT = { connect = 10, read = 60 }

-- Session{base_url=, headers=, limit=100, limit_per_host=10, keepalive_timeout=30,
--   timeout={total=, connect=10, pool=, read=60}, max_redirects=10, max_header_size=16384,
--   max_headers=100}
local function new(opts)
  opts = opts or {}
  if opts.ssl then error("aloop.http.Session: ssl= needs aio.ssl, which aloop does not have yet", 3) end
  local timeout = {}
  for k, v in pairs(DEFAULT_TIMEOUT) do timeout[k] = v end
  for k, v in pairs(opts.timeout or {}) do timeout[k] = v end
  return setmetatable({
    base_url = opts.base_url, headers = opts.headers, timeout = timeout,
    max_redirects = opts.max_redirects or 10,
    pool = Pool.new(opts),
    parser_opts = { max_header_size = opts.max_header_size or 16384,
      max_headers = opts.max_headers or 100, headers_mt = headers.mt },
  }, Session)
end
setmetatable(Session, { __call = function(_, opts) return new(opts) end })

local function running_loop(what)
  local loop = core._running_loop()
  if not loop then error(("aloop.http.%s: not inside a task; use aio.run(main)"):format(what), 3) end
  return loop
end

-- Runs fn(...) under a delay; a timeout becomes aio.TimeoutError naming which one.
local function timed(delay, what, fn, ...)
  if not delay then return fn(...) end
  if delay <= 0 then error(aio.TimeoutError(what .. " timeout"), 0) end
  local args = table.pack(...)
  local ok, a = pcall(function()
    local _ <close> = aio.timeout(delay)
    return fn(table.unpack(args, 1, args.n))
  end)
  if ok then return a end
  if aio.iserror(a, aio.TimeoutError) then
    error(aio.TimeoutError(("%s timeout (%gs)"):format(what, delay)), 0)
  end
  error(a, 0)
end

-- The shorter of a timeout and what is left of the total.
local function limit(loop, delay, what, deadline)
  if deadline then
    local left = deadline - loop:time()
    if not delay or left < delay then return left, "total" end
  end
  return delay, what
end

local function read_wait(wire, f)
  local conn = wire.conn
  local delay, what = limit(conn.loop, conn.read_timeout, "read", conn.deadline)
  timed(delay, what, await, f)
end

local function stream_protocol()
  return { connection_made = function(_, tr) tr:_reader(65536) end } -- a stream from the start
end

-- A connection to u from the pool, or a new one.
function Session:_connect(loop, u, key, t, deadline)
  local delay, what = limit(loop, t.pool, "pool", deadline)
  local got = self.pool:acquire(key, loop, function(fut) timed(delay, what, await, fut) end)
  if got ~= true then
    got.reused = true
    return got
  end
  delay, what = limit(loop, t.connect, "connect", deadline)
  local ok, tr = pcall(timed, delay, what, loop.create_connection, loop, stream_protocol, u.host, u.port)
  if not ok then
    self.pool:failed(key)
    error(tr, 0)
  end
  local conn = { tr = tr, key = key, loop = loop }
  conn.wire = Wire.new(tr, H.parser("response", self.parser_opts), read_wait)
  conn.wire.conn = conn
  return conn
end

function Session:_release(conn, reusable)
  self.pool:release(conn, reusable, conn.loop)
end

-- Writes a streamed body: a function giving pieces (chunked) or a file (its size known).
local function send_body(tr, body, chunked)
  local function put(piece)
    tr:write(chunked and H.chunk(piece) or piece)
    local f = tr:_drain()
    if f then await(f) end
  end
  if type(body) == "function" then
    for piece in body do if #piece > 0 then put(piece) end end
  else
    while true do
      local piece = body:read(65536)
      if not piece then break end
      put(piece)
    end
  end
  if chunked then tr:write("0\r\n\r\n") end
end

-- One request/response exchange on conn; returns the response once its head is in.
function Session:_exchange(conn, method, u, hdrs, body, t, deadline)
  conn.read_timeout, conn.deadline, conn.answered = t.read, deadline, false
  local tr, wire = conn.tr, conn.wire
  if method == "HEAD" then wire.parser:skip_body() end
  local body_arg = body
  local bt = type(body)
  if bt == "function" then body_arg = true
  elseif io.type(body) == "file" then
    body_arg = body:seek("end")
    body:seek("set", 0)
  end
  local data, big = H.request(method, u.target, u.authority, hdrs, self.headers, body_arg)
  tr:write(data)
  if big then tr:write(big) end
  if bt == "function" or io.type(body) == "file" then send_body(tr, body, bt == "function") end
  while true do
    local ev, code, desc = wire:next()
    if ev == nil then
      error(errors.ProtocolError(code and ("malformed response: " .. desc)
        or "the connection closed before a response", { eof = not code }), 0)
    end
    conn.answered = true
    if type(ev) == "table" and (ev.status >= 200 or ev.status == 101) then
      return ClientResponse.new(ev, conn, self, u.url)
    end
  end
end

-- A send on a reused connection that failed before any byte came back: worth one retry?
local function stale(conn, err)
  return conn.reused and not conn.answered
    and (aio.iserror(err, aio.ConnectionError) or (aio.iserror(err, errors.ProtocolError) and err.eof))
end

function Session:_send(loop, method, full, hdrs, body, t, deadline)
  local u = url.parse(full)
  u.url = full
  if u.scheme == "https" then
    error("aloop.http: https:// needs aio.ssl (TLS), which aloop does not have yet", 0)
  end
  local key = u.host .. ":" .. u.port
  for attempt = 1, 2 do
    local conn = self:_connect(loop, u, key, t, deadline)
    local ok, res = pcall(self._exchange, self, conn, method, u, hdrs, body, t, deadline)
    if ok then return res end
    self:_release(conn, false)
    local replayable = body == nil or type(body) == "string"
    if not (attempt == 1 and IDEMPOTENT[method] and replayable and stale(conn, res)) then
      error(res, 0)
    end
  end
end

-- The request body and the headers it implies, from opts.body / opts.json / opts.form.
local function body_of(opts, hdrs)
  local function set_type(v)
    for k in pairs(hdrs) do if k:lower() == "content-type" then return end end
    hdrs["content-type"] = v
  end
  if opts.json ~= nil then
    set_type("application/json")
    return json.encode(opts.json)
  elseif opts.form ~= nil then
    set_type("application/x-www-form-urlencoded")
    return url.encode_query(opts.form)
  end
  local b = opts.body
  if b ~= nil and type(b) ~= "string" and type(b) ~= "function" and io.type(b) ~= "file" then
    error("aloop.http: body must be a string, a file or an iterator function, got " .. type(b), 0)
  end
  return b
end

-- request(method, url, {params=, headers=, body=, json=, form=, timeout=, allow_redirects=})
function Session:request(method, target, opts)
  local loop = running_loop("request")
  if self.closed then error("aloop.http: the session is closed", 2) end
  opts = opts or {}
  method = tostring(method):upper()
  local t = self.timeout
  if opts.timeout ~= nil then
    local o = opts.timeout
    t = {}
    for k, v in pairs(self.timeout) do t[k] = v end
    if type(o) == "number" then t.total = o else for k, v in pairs(o) do t[k] = v end end
  end
  local deadline = t.total and loop:time() + t.total
  local full = self.base_url and url.join(self.base_url, target) or target
  if opts.params then
    full = full .. (full:find("?", 1, true) and "&" or "?") .. url.encode_query(opts.params)
  end
  local hdrs = {}
  for k, v in pairs(opts.headers or {}) do hdrs[k] = v end
  local body = body_of(opts, hdrs)
  local history = {}
  while true do
    local r = self:_send(loop, method, full, hdrs, body, t, deadline)
    local location = r.headers.location
    if not (REDIRECT[r.status] and location and opts.allow_redirects ~= false) then
      r.history = history
      return r
    end
    if #history >= self.max_redirects then
      r:close()
      error(errors.TooManyRedirects(("more than %d redirects (last: %s)"):format(self.max_redirects, full),
        { history = history, response = r }), 0)
    end
    pcall(r.read, r) -- the redirect's own body, so its connection can be reused
    r:close()
    history[#history + 1] = r
    if r.status == 303 and method ~= "HEAD" or (r.status == 301 or r.status == 302) and method == "POST" then
      method, body = "GET", nil
      for k in pairs(hdrs) do
        local l = k:lower()
        if l == "content-type" or l == "content-length" or l == "transfer-encoding" then hdrs[k] = nil end
      end
    elseif body ~= nil and type(body) ~= "string" then
      r.history = history
      return r -- a streamed body cannot be sent again
    end
    local next_url = url.join(full, location)
    if url.parse(next_url).authority ~= url.parse(full).authority then
      for k in pairs(hdrs) do if k:lower() == "authorization" then hdrs[k] = nil end end
    end
    full = next_url
  end
end

for _, m in ipairs { "get", "post", "put", "patch", "delete", "head", "options" } do
  local method = m:upper()
  Session[m] = function(self, target, opts) return self:request(method, target, opts) end
end

-- close(): closes the idle connections; connections in use close when their response does
function Session:close()
  self.closed = true
  self.pool:close()
end
Session.__close = Session.close

return session
