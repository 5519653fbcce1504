-- One Redis connection (aloop.redis.connection): a stream protocol on aloop's own transport whose
-- data_received feeds the C codec (src/redis/codec.c), which completes the waiting futures itself.
-- Commands sent in one loop iteration leave in one write (the flush is a call_soon). Connects
-- lazily: AUTH and SELECT on each new connection; after a drop, the next command reconnects and
-- the commands that were waiting get the error (nothing is retried behind the caller's back).
local aio = require "aloop"
local core = require "aloop.core"

local await = core.await_future
local running_loop = core._running_loop

local M = {}

-- A nil inside an array reply (a nil at the top level is plain nil).
M.null = setmetatable({}, {
  __name = "aloop.redis.null",
  __tostring = function() return "redis.null" end,
  __newindex = function() error("aloop.redis: redis.null is read-only", 2) end,
})

-- An error reply: .message is the server's text, .code its first word ("WRONGTYPE", "ERR" ...).
M.ReplyError = aio.Error:extend("redis.ReplyError")

local Connection = { __name = "aloop.redis.Connection" }
Connection.__index = Connection
M.Connection = Connection

local Protocol = {}
Protocol.__index = Protocol

function Protocol:data_received(data)
  local conn = self.conn
  if conn._proto ~= self then return end
  local n, err = conn._codec:feed(data, conn._out)
  if not n then
    conn:_drop(aio.ConnectionAbortedError("aloop.redis: " .. err .. "; connection dropped"))
  elseif n > 0 then
    conn._on_push(conn._out, n)
  end
end

function Protocol:connection_lost(exc)
  local conn = self.conn
  if conn._proto ~= self then return end
  conn:_lost(exc)
end

-- new(client_opts, loop, on_push): on_push(list, n) gets replies no command asked for (pub/sub).
function M.new(opts, loop, on_push)
  local conn = setmetatable({
    _opts = opts, _loop = loop, _state = "new", _connect_waiters = {},
    _codec = core._redis.codec(loop, M.ReplyError, M.null),
    _out = on_push and {} or nil, _on_push = on_push,
  }, Connection)
  conn._flush = function()
    local data = conn._codec:take()
    local tr = conn._transport
    if data and tr then tr:write(data) end
  end
  return conn
end

-- Sends one command (the connection is ready or being made ready by this task).
function Connection:send(...)
  local fut, first = self._codec:send(...)
  if first then self._loop:call_soon(self._flush) end
  return fut
end

-- Sends a command whose replies go to on_push (pub/sub).
function Connection:write(...)
  if self._codec:write(...) then self._loop:call_soon(self._flush) end
end

function Connection:send_batch(batch)
  local fut, first = self._codec:send_batch(batch)
  if first then self._loop:call_soon(self._flush) end
  return fut
end

local function expire(fut, timeout)
  if not fut:done() then
    fut:set_exception(aio.TimeoutError(("aloop.redis: no reply within %gs"):format(timeout)))
  end
end

-- The reply to fut, within the command timeout when there is one.
function Connection:wait(fut)
  local timeout = self._opts.timeout
  if not timeout then return await(fut) end
  local h = self._loop:call_later(timeout, expire, fut, timeout)
  local ok, res = pcall(await, fut)
  h:cancel()
  if not ok then error(res, 0) end
  return res
end

function Connection:call(...)
  return self:wait(self:send(...))
end

-- Makes the connection usable: connects (once, for all the tasks that need it now) if it is not.
function Connection:ensure()
  local state = self._state
  if state == "ready" then return end
  if state == "closed" then error(aio.InvalidStateError("aloop.redis: the client is closed"), 2) end
  if running_loop() ~= self._loop then
    error("aloop.redis: the client belongs to another loop (or no loop runs here)", 2)
  end
  if state == "connecting" then
    local fut = self._loop:create_future()
    local waiters = self._connect_waiters
    waiters[#waiters + 1] = fut
    if await(fut) then return end
    return self:ensure() -- the task connecting was cancelled: try ourselves
  end
  self._state = "connecting"
  local ok, err = pcall(self._connect, self)
  if ok and self._state == "connecting" then
    self._state = "ready"
  else
    if ok then err = aio.InvalidStateError("aloop.redis: the client is closed") end
    ok = false
    if self._state ~= "closed" then self._state = "lost" end
    local tr = self._transport
    self._proto, self._transport = nil, nil
    if tr then tr:abort() end
  end
  local waiters = self._connect_waiters
  self._connect_waiters = {}
  local cancelled = not ok and aio.iserror(err, aio.CancelledError)
  for _, fut in ipairs(waiters) do
    if not fut:done() then
      if ok or cancelled then fut:set_result(ok) else fut:set_exception(err) end
    end
  end
  if not ok then error(err, 0) end
end

function Connection:_connect()
  local opts, loop = self._opts, self._loop
  local proto = setmetatable({ conn = self }, Protocol)
  local function factory() return proto end
  do
    local _ <close> = aio.timeout(opts.connect_timeout)
    local tr
    -- rediss:// or ssl=: TLS on the stream transport (the handshake is done when this returns)
    local tls = opts.ssl and { ssl = opts.ssl, server_hostname = opts.server_hostname } or nil
    if opts.path then
      tr = loop:create_unix_connection(factory, opts.path, tls)
    else
      tr = loop:create_connection(factory, opts.host, opts.port, tls)
    end
    self._proto, self._transport = proto, tr
    local handshake = {}
    if opts.password then
      handshake[#handshake + 1] = opts.username and self:send("AUTH", opts.username, opts.password)
        or self:send("AUTH", opts.password)
    end
    if opts.db and opts.db ~= 0 then handshake[#handshake + 1] = self:send("SELECT", opts.db) end
    if opts.name then handshake[#handshake + 1] = self:send("CLIENT", "SETNAME", opts.name) end
    for _, fut in ipairs(handshake) do await(fut) end
  end
end

-- The transport is gone: every waiting command gets the error (or a clear one for a clean EOF).
function Connection:_lost(exc)
  self._proto, self._transport = nil, nil
  local err = self._close_error or exc
    or aio.ConnectionResetError("aloop.redis: the server closed the connection")
  if self._state ~= "closed" then self._state = "lost" end
  self._codec:fail(err)
  if self._on_lost then self._on_lost(err) end
end

-- Drops the connection now (protocol error, abandoned blocking command): waiters get err.
function Connection:_drop(err)
  local tr = self._transport
  if not tr then return end
  self:_lost(err)
  tr:abort()
end

function Connection:pending() return self._codec:pending() end

-- Closes for good: waiting commands get a ConnectionAbortedError.
function Connection:close()
  if self._state == "closed" then return end
  self._state = "closed"
  self._close_error = aio.ConnectionAbortedError("aloop.redis: the client was closed")
  local tr = self._transport
  if tr then
    self:_lost(self._close_error)
    tr:close()
  end
  local waiters = self._connect_waiters
  self._connect_waiters = {}
  for _, fut in ipairs(waiters) do
    if not fut:done() then fut:set_exception(self._close_error) end
  end
end

return M
