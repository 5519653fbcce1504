-- The HTTP/1.1 server (http.serve, API.md §13): one task per connection loops over its
-- requests (keep-alive, pipelined requests answered in order), the handler's result is
-- serialised in C and written once. Limits answer 400/408/413/431 and close; the header, body
-- and keep-alive timeouts are one periodic sweep over the connections (no timer per request).
-- srv:shutdown(timeout) stops accepting, closes idle connections (kept alive, or accepted with
-- nothing received yet), lets in-flight requests end with Connection: close, then cancels what
-- is left. Under `aloop --workers` a worker's graceful stop runs it.
local aio = require "aloop"
local core = require "aloop.core"
local Wire = require "aloop.http.wire"
local Writer = require "aloop.http.writer"
local Request = require "aloop.http.request"
local response = require "aloop.http.response"
local errors = require "aloop.http.errors"

local H = core._http
local serialize, await = H.response, core.await_future
local is_response = response.is
local HTTPError = errors.HTTPError

local server = {}

local Server = { __name = "aloop.http.Server" }
Server.__index = Server

local MODE_CLOSE, MODE_KEEPALIVE, MODE_CHUNKED, MODE_HEAD, MODE_UNFRAMED = 1, 2, 4, 8, 16

-- The error a parser code answers with.
local code_status = {
  header_too_large = 431, too_many_headers = 431, body_too_large = 413, eof = false, upgrade = false,
}

local Conn = {}
Conn.__index = Conn

-- Answers status with a short text body and Connection: close (an error the connection ends on).
function Conn:fail(status, text)
  local tr = self.tr
  if tr:is_closing() or self.responding then return end
  self.wire:flush()
  tr:write(serialize(status, nil, text or "", MODE_CLOSE))
end

-- Waits for bytes (buf_wait(buf) parks the task on the read buffer); first sets the deadline
-- the sweep enforces for this phase (on the sweep's clock, srv.now: no clock call per request;
-- a deadline is as precise as the sweep).
local function wait_read(wire, buf_wait, buf)
  local conn = wire.conn
  local srv = conn.srv
  local phase = conn.phase
  if phase == "body" then
    conn.deadline = srv.now + srv.body_timeout
  elseif phase == "idle" then
    if wire.parser:idle() then
      if srv.closing then error(aio.CancelledError("server shutting down"), 0) end
      conn.deadline = srv.now + srv.keepalive_timeout
    else
      conn.phase = "head"
      conn.deadline = srv.now + srv.header_timeout
    end
  end
  buf_wait(buf)
end

-- The next body event of the request being handled (req:chunks()).
function Conn:next_body(req)
  if req ~= self.req then error("aloop.http: the request's connection moved on", 3) end
  if not self.continued then
    self.continued = true
    local expect = req.headers.expect
    if expect and expect:lower() == "100-continue" then
      self.wire:flush()
      self.tr:write("HTTP/1.1 100 Continue\r\n\r\n")
    end
  end
  self.phase = "body"
  local ev, code, desc = self.wire:next()
  self.phase = "busy"
  self.deadline = nil
  if ev == nil then
    local status = code_status[code] or 400
    error(HTTPError(status, desc or "request body incomplete"), 0)
  end
  return ev
end

-- The mode bits and extra lines a response to req gets.
local function mode_of(conn, req)
  local srv = conn.srv
  local keep = req.keep_alive and not srv.closing and not conn.wire.code
  conn.keep = keep
  local mode = keep and (req.version == "1.0" and MODE_KEEPALIVE or 0) or MODE_CLOSE
  if req.method == "HEAD" then mode = mode | MODE_HEAD end
  return mode, keep and srv.keepalive_line or nil
end

-- req:respond{status=, headers=}: sends the head now, returns the Writer.
function Conn:stream(req, t)
  if self.responding then error("aloop.http: this request was already answered", 3) end
  self.responding = true
  local mode, extra = mode_of(self, req)
  local hdrs = t.headers
  local length = hdrs and (hdrs["content-length"] or hdrs["Content-Length"])
  length = length and math.tointeger(tonumber(length))
  local status = t.status or 200
  local chunked = not length and status >= 200 and status ~= 204 and status ~= 304
  if chunked and req.version == "1.0" then -- no chunked for HTTP/1.0: the close ends the body
    chunked, self.keep = false, false
    mode = (mode & MODE_HEAD) | MODE_CLOSE | MODE_UNFRAMED
    extra = nil
  elseif chunked then
    mode = mode | MODE_CHUNKED
  end
  self.wire:flush()
  self.tr:write(serialize(status, hdrs, nil, mode, extra))
  local w = Writer.new(self.tr, chunked and (mode & MODE_HEAD) == 0, length, (mode & MODE_HEAD) ~= 0)
  self.writer = w
  return w
end

-- Streams a function or file body.
local function send_stream(conn, req, res)
  local hdrs = res.headers
  local w = conn:stream(req, { status = res.status, headers = hdrs })
  local body = res.body
  if type(body) == "function" then
    for piece in body do w:write(piece) end
  else
    local ok, err = pcall(function()
      while true do
        local piece = body:read(65536)
        if not piece then break end
        w:write(piece)
      end
    end)
    body:close()
    if not ok then error(err, 0) end
  end
  w:close()
end

-- Writes the handler's result.
local function send_result(conn, req, res)
  if type(res) == "string" then
    local mode, extra = mode_of(conn, req)
    conn.wire:send(serialize(200, nil, res, mode, extra))
  elseif is_response(res) then
    local body = res.body
    if body ~= nil and type(body) ~= "string" then return send_stream(conn, req, res) end
    local mode, extra = mode_of(conn, req)
    local data, big = serialize(res.status, res.headers, body or "", mode, extra)
    conn.wire:send(data)
    if big then conn.wire:send(big) end
  else
    error(("aloop.http: the handler returned %s (a string or http.Response expected)")
      :format(type(res)), 0)
  end
  conn.responding = true
end

-- The answer to an error out of the handler: HTTPError's status, else 500 (reported).
local function error_result(conn, req, err)
  if aio.iserror(err, HTTPError) then
    return response.Response { status = err.status, body = tostring(err.message or "") }
  end
  conn.srv.loop:call_exception_handler { message = "Error handling HTTP request " .. req.method ..
    " " .. req.target, exception = err }
  return response.Response { status = 500, body = "Internal Server Error" }
end

-- Reads and drops the rest of a body the handler left unread. False when that is not worth it.
local function discard_body(conn, req)
  if req._body ~= nil or req._body_done then return true end
  if conn.continued == false and req.headers.expect then return false end -- never asked for it
  local ok = pcall(function() for _ in req:chunks() do end end)
  return ok
end

-- Handles one request; true when the connection goes on.
local function answer(conn, req)
  local srv = conn.srv
  conn.req, conn.responding, conn.writer, conn.continued, conn.keep = req, false, nil, false, false
  req._conn = conn
  local ok, res = pcall(srv.handle, req)
  if not ok and (conn.timed_out or aio.iserror(res, aio.CancelledError)) then
    error(res, 0) -- a timeout of the sweep, or the shutdown cancelling
  end
  local w = conn.writer
  if w then -- a streamed response: its head is out, an error can only cut it short
    if not ok then
      if not aio.iserror(res, HTTPError) then error_result(conn, req, res) end
      return false
    end
    if not w.closed then w:close() end
    return conn.keep and w:complete() and discard_body(conn, req)
  end
  if ok and type(res) == "string" then -- the common case, without the checks below
    local mode, extra = mode_of(conn, req)
    conn.wire:send(serialize(200, nil, res, mode, extra))
    conn.responding = true
    return conn.keep and (req._body ~= nil or discard_body(conn, req))
  end
  if not ok then res = error_result(conn, req, res) end
  ok, res = pcall(send_result, conn, req, res)
  if not ok then
    if conn.writer then return false end
    send_result(conn, req, error_result(conn, req, res))
  end
  return conn.keep and discard_body(conn, req)
end

-- The connection task: requests in order until the peer or a limit ends it.
local function serve_requests(conn)
  local wire = conn.wire
  while true do
    local req = wire:next()
    local code, desc = wire.code, wire.desc
    if req == nil then
      local status = code_status[code]
      if status == nil and code then status = 400 end
      if status then conn:fail(status, desc) end
      return
    end
    if type(req) ~= "table" then return end -- body events no request owns: give up
    if code and not wire:pending() and not req._body ~= nil then
      local status = code_status[code] -- its body is already known to be malformed
      if status == nil then status = 400 end
      if status then conn:fail(status, desc) end
      return
    end
    local v = req.version
    if v ~= "1.1" and v ~= "1.0" then
      conn:fail(505, "HTTP Version Not Supported")
      return
    end
    conn.phase, conn.deadline = "busy", nil
    if not answer(conn, req) then return end
    conn.phase, conn.responding = "idle", false
  end
end

local function run_conn(conn)
  local srv, tr = conn.srv, conn.tr
  local ok, err = pcall(serve_requests, conn)
  if not ok then
    local t = conn.timed_out
    if t == "head" or t == "body" then
      conn:fail(408, "Request Timeout")
    elseif not t and not srv.cancelled and not aio.iserror(err, aio.CancelledError)
        and not aio.iserror(err, aio.ConnectionError) then
      srv.loop:call_exception_handler { message = "Error in HTTP connection", exception = err,
        transport = tr }
      tr:abort()
    end
  end
  conn.wire:flush()
  if not tr:is_closing() then tr:close() end
  srv.conns[conn] = nil
  srv.nconns = srv.nconns - 1
  if srv.nconns == 0 and srv.idle_waiter and not srv.idle_waiter:done() then
    srv.idle_waiter:set_result()
  end
end

local function new_conn(srv, tr)
  if srv.max_connections and srv.nconns >= srv.max_connections then
    tr:write(serialize(503, nil, "Service Unavailable", MODE_CLOSE))
    tr:close()
    return
  end
  local parser = H.parser("request", srv.parser_opts)
  local conn = setmetatable({ srv = srv, tr = tr, phase = "head",
    deadline = srv.now + srv.header_timeout }, Conn)
  conn.wire = Wire.new(tr, parser, wait_read)
  conn.wire.conn = conn
  srv.conns[conn] = true
  srv.nconns = srv.nconns + 1
  conn.task = srv.loop:create_task(run_conn, conn)
end

-- The sweep: connections past their phase's deadline are cancelled (run_conn answers 408).
local function sweep(srv)
  srv.sweeper = nil
  local now = srv.loop:time()
  srv.now = now
  for conn in pairs(srv.conns) do
    local d = conn.deadline
    if d and now >= d and not conn.timed_out and conn.phase ~= "busy" then
      conn.timed_out = conn.phase
      conn.task:cancel()
    end
  end
  if not srv.stopped then srv.sweeper = srv.loop:call_later(srv.tick, sweep, srv) end
end

local function setting(app, key, default)
  local v = app and app[key]
  if v == nil then return default end
  return v
end

-- serve(app_or_handler, host, port, {ssl=, ssl_handshake_timeout=, reuse_port=, backlog=, sock=})
-- -> Server (suspends). With ssl = a server context each connection shakes hands before its
-- first request; a failed handshake ends that connection only (logged at debug level).
function server.serve(app, host, port, opts)
  local loop = core._running_loop()
  if not loop then error("aloop.http.serve: not inside a task; use aio.run(main)", 2) end
  opts = opts or {}
  local handle, settings
  if type(app) == "function" then
    handle = app
  elseif type(app) == "table" and app.dispatcher then
    handle, settings = app:dispatcher(), app.settings
  else
    error("aloop.http.serve: an http.App or a handler function expected, got " .. type(app), 2)
  end
  local srv = setmetatable({ loop = loop, app = app, handle = handle, conns = {}, nconns = 0 }, Server)
  srv.keepalive_timeout = setting(settings, "keepalive_timeout", 75)
  srv.header_timeout = setting(settings, "header_timeout", 10)
  srv.body_timeout = setting(settings, "body_timeout", 60)
  srv.max_connections = setting(settings, "max_connections", nil)
  srv.keepalive_line = ("Keep-Alive: timeout=%d\r\n"):format(math.ceil(srv.keepalive_timeout))
  srv.parser_opts = {
    max_header_size = setting(settings, "max_header_size", 8192),
    max_headers = setting(settings, "max_headers", 100),
    max_body = setting(settings, "client_max_size", 1 << 20),
    head_mt = Request, raw_headers = true,
  }
  local shortest = math.min(srv.keepalive_timeout, srv.header_timeout, srv.body_timeout)
  srv.tick = math.max(0.01, math.min(1, shortest / 4))
  srv.server = loop:create_server(function()
    return { connection_made = function(_, tr) new_conn(srv, tr) end }
  end, host, port, { reuse_port = opts.reuse_port, backlog = opts.backlog, sock = opts.sock,
    ssl = opts.ssl, ssl_handshake_timeout = opts.ssl_handshake_timeout })
  srv.sockets = srv.server.sockets
  -- a worker's graceful stop (aloop.workers.worker) closes the idle connections at once
  srv.server._graceful_stop = function(timeout) srv:shutdown(timeout) end
  srv.now = loop:time()
  srv.sweeper = loop:call_later(srv.tick, sweep, srv)
  return srv
end

-- srv:port() -> the port of the first listening socket
function Server:port() return self.sockets[1]:getsockname()[2] end

-- shutdown(timeout = 30): stop accepting, close idle connections (keep-alive ones between
-- requests, and those that sent nothing yet), let in-flight requests finish (answered with
-- Connection: close) for up to timeout seconds, then cancel.
function Server:shutdown(timeout)
  if self.stopped then return end
  self.closing = true
  self.server:close()
  for conn in pairs(self.conns) do -- idle: between requests, or no byte since the accept
    if (conn.phase == "idle" or conn.phase == "head") and conn.wire:quiet() then
      conn.timed_out = "idle"
      conn.task:cancel()
    end
  end
  if self.nconns > 0 then
    self.idle_waiter = self.loop:create_future()
    pcall(aio.wait_for, self.idle_waiter, timeout or 30)
    if self.nconns > 0 then
      self.cancelled = true
      local tasks = {}
      for conn in pairs(self.conns) do
        tasks[#tasks + 1] = conn.task
        conn.task:cancel()
      end
      aio.wait(tasks)
    end
  end
  self.stopped = true
  if self.sweeper then self.sweeper:cancel() self.sweeper = nil end
  self.server:wait_closed()
end

-- close(): shutdown(0)
function Server:close() self:shutdown(0) end
Server.__close = Server.close

return server
