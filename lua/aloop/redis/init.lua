-- aloop.redis (API.md §14): a Redis client over aloop's connections. A Client holds a pool of
-- up to pool_size connections: one is shared by every task for plain commands, which are
-- pipelined automatically (one write per loop iteration, replies matched in order by the C
-- codec); r:acquire() lends one out for commands that block or change the connection's state;
-- waiting for a free connection is FIFO. r:pipeline, r:transaction, r:script; pub/sub is in
-- aloop.redis.pubsub (its own connection), URLs in aloop.redis.url.
local aio = require "aloop"
local core = require "aloop.core"
local connection = require "aloop.redis.connection"
local parse_url = require("aloop.redis.url").parse

local await = core.await_future
local running_loop = core._running_loop
local unpack = table.unpack

local redis = {
  null = connection.null,
  ReplyError = connection.ReplyError,
  DEFAULT_POOL_SIZE = 10,
}
local ReplyError = redis.ReplyError

---------------------------------------------------------------------------------------------
-- Commands that must not run on the shared connection, and why.

local ACQUIRE = "needs a connection of its own: use it on local c <close> = r:acquire()"
local REFUSED = {
  BLPOP = ACQUIRE, BRPOP = ACQUIRE, BRPOPLPUSH = ACQUIRE, BLMOVE = ACQUIRE, BLMPOP = ACQUIRE,
  BZPOPMIN = ACQUIRE, BZPOPMAX = ACQUIRE, BZMPOP = ACQUIRE, WAIT = ACQUIRE, WAITAOF = ACQUIRE,
  MONITOR = ACQUIRE, CLIENT = ACQUIRE, AUTH = ACQUIRE, HELLO = ACQUIRE, RESET = ACQUIRE,
  QUIT = ACQUIRE,
  SELECT = "changes the connection's database: put the db in the URL or use r:acquire()",
  MULTI = "needs a connection of its own: use r:transaction(fn) or r:acquire()",
  EXEC = "needs a connection of its own: use r:transaction(fn) or r:acquire()",
  DISCARD = "needs a connection of its own: use r:transaction(fn) or r:acquire()",
  WATCH = "needs a connection of its own: use r:transaction(fn, {watch=}) or r:acquire()",
  UNWATCH = "needs a connection of its own: use r:transaction(fn, {watch=}) or r:acquire()",
  SUBSCRIBE = "puts the connection in pub/sub mode: use r:subscribe()",
  PSUBSCRIBE = "puts the connection in pub/sub mode: use r:psubscribe()",
  SSUBSCRIBE = "puts the connection in pub/sub mode: use r:subscribe()",
  UNSUBSCRIBE = "belongs to a subscriber: use sub:unsubscribe()",
  PUNSUBSCRIBE = "belongs to a subscriber: use sub:punsubscribe()",
  SUNSUBSCRIBE = "belongs to a subscriber: use sub:unsubscribe()",
}
-- On a dedicated connection, these leave state behind that the next user must not inherit:
-- the connection is closed instead of going back to the pool.
local DIRTIES = {
  SELECT = true, CLIENT = true, AUTH = true, HELLO = true, MONITOR = true, SUBSCRIBE = true,
  PSUBSCRIBE = true, SSUBSCRIBE = true, RESET = true, READONLY = true, QUIT = true,
}
local TX_OPEN = { WATCH = true, MULTI = true }
local TX_CLOSE = { EXEC = true, DISCARD = true, UNWATCH = true }

-- The upper-case form of a command name, remembered for the names a program uses.
local upper_of, nupper = {}, 0
local function upper(name)
  local u = upper_of[name]
  if u then return u end
  if type(name) ~= "string" then
    error("aloop.redis: a command name expected, got " .. type(name), 3)
  end
  u = name:upper()
  if nupper < 4096 then upper_of[name], nupper = u, nupper + 1 end
  return u
end

-- Why the command may not run on the shared connection, or nil.
local function refusal(name, ...)
  local u = upper(name)
  local why = REFUSED[u]
  if why then return u, why end
  if u == "XREAD" or u == "XREADGROUP" then
    for i = 1, select("#", ...) do
      local a = select(i, ...)
      if type(a) == "string" and a:upper() == "BLOCK" then return u .. " BLOCK", ACQUIRE end
    end
  end
end

local function refuse(name, ...)
  local u, why = refusal(name, ...)
  if why then error(("aloop.redis: %s %s"):format(u, why), 3) end
end

-- r:get(k) is r:call("GET", k): methods made on first use for any name not defined. A command
-- that needs no check (most) calls the class's _send(name, ...) directly: call() less the check.
local function needs_check(cmd)
  return REFUSED[cmd] or DIRTIES[cmd] or TX_OPEN[cmd] or TX_CLOSE[cmd]
    or cmd == "XREAD" or cmd == "XREADGROUP"
end

local function with_command_methods(class)
  return setmetatable(class, {
    __index = function(t, name)
      if type(name) ~= "string" or name:sub(1, 1) == "_" then return nil end
      local cmd = name:upper()
      local f
      if needs_check(cmd) then
        f = function(self, ...) return self:call(cmd, ...) end
      else
        f = function(self, ...) return self:_send(cmd, ...) end
      end
      rawset(t, name, f)
      return f
    end,
  })
end

-- Raises the first error reply among res[first..last].
local function raise_first_error(res, first, last)
  for i = first, last do
    local v = res[i]
    if getmetatable(v) == ReplyError then error(v, 0) end
  end
end

---------------------------------------------------------------------------------------------
-- The client and its pool.

local Client = with_command_methods { __name = "aloop.redis.Client" }
Client.__index = Client
redis.Client = Client

local function client_loop(self)
  local loop = running_loop()
  if not loop then error("aloop.redis: not inside a task; use aio.run(main)", 3) end
  if not self._loop then self._loop = loop
  elseif self._loop ~= loop then error("aloop.redis: the client belongs to another loop", 3) end
  return loop
end

-- A connection of the pool for the caller: an idle one, a new one, or (FIFO) the next released.
function Client:_take()
  if self._closed then error(aio.InvalidStateError("aloop.redis: the client is closed"), 3) end
  local loop = client_loop(self)
  local idle = self._idle
  if #idle > 0 then return table.remove(idle) end
  if self._count < self._opts.pool_size then
    self._count = self._count + 1
    return connection.new(self._opts, loop)
  end
  local shared = self._shared
  if shared and shared:pending() == 0 and not self._shared_wait then
    self._shared = nil -- an idle shared connection may be lent out
    return shared
  end
  local fut = loop:create_future()
  local q = self._waiters
  q.tail = q.tail + 1
  q[q.tail] = fut
  local ok, conn = pcall(await, fut)
  if ok then return conn end
  -- cancelled after a connection was handed over: it goes to the next in line
  if fut:done() and not fut:cancelled() and fut:exception() == nil then self:_give(fut:result()) end
  error(conn, 0)
end

-- Gives conn back: to the first task still waiting, else to the idle list. A connection left
-- in a state of its own, or with replies still due, is closed and its slot freed.
function Client:_give(conn, dirty)
  if dirty or conn._state ~= "ready" or conn:pending() > 0 or self._closed then
    conn:close()
    conn = not self._closed and connection.new(self._opts, self._loop) or nil
    if not conn then self._count = self._count - 1 return end
  end
  local q = self._waiters
  while q.head <= q.tail do
    local fut = q[q.head]
    q[q.head] = nil
    q.head = q.head + 1
    if not fut:done() then return fut:set_result(conn) end
  end
  local idle = self._idle
  idle[#idle + 1] = conn
end

-- The shared connection, ready. Tasks arriving while one of them gets it wait for that one.
function Client:_get_shared()
  while true do
    local conn = self._shared
    if conn then
      conn:ensure()
      if self._shared == conn then return conn end
    elseif self._shared_wait then
      local fut = self._loop:create_future()
      local list = self._shared_wait
      list[#list + 1] = fut
      await(fut)
    else
      self._shared_wait = {}
      local ok, c = pcall(self._take, self)
      local list = self._shared_wait
      self._shared_wait = nil
      if ok then self._shared = c end
      for _, fut in ipairs(list) do
        if not fut:done() then fut:set_result() end
      end
      if not ok then error(c, 0) end
    end
  end
end

function Client:call(name, ...)
  refuse(name, ...)
  return self:_send(name, ...)
end

function Client:_send(name, ...)
  local conn = self._shared
  if not conn or conn._state ~= "ready" or self._loop ~= running_loop() then
    conn = self:_get_shared()
  end
  return conn:wait(conn:send(name, ...))
end

function Client:close()
  if self._closed then return end
  self._closed = true
  if self._shared then self._shared:close() end
  for _, conn in ipairs(self._idle) do conn:close() end
  for _, conn in pairs(self._lent) do conn:close() end
  local q = self._waiters
  for i = q.head, q.tail do
    local fut = q[i]
    if not fut:done() then fut:set_exception(aio.InvalidStateError("aloop.redis: the client is closed")) end
  end
end
Client.__close = Client.close

function Client:__tostring()
  local o = self._opts
  return ("<redis.Client %s db=%d pool_size=%d>"):format(
    o.path or (o.host .. ":" .. o.port), o.db or 0, o.pool_size)
end

---------------------------------------------------------------------------------------------
-- Dedicated connections: r:acquire().

local Dedicated = with_command_methods { __name = "aloop.redis.Connection" }
Dedicated.__index = Dedicated
redis.Dedicated = Dedicated

function Client:acquire()
  local conn = self:_take()
  local ok, err = pcall(conn.ensure, conn)
  if not ok then
    self:_give(conn, true)
    error(err, 0)
  end
  self._lent[conn] = conn
  return setmetatable({ _client = self, _conn = conn, _dirty = false, _tx = false }, Dedicated)
end

function Dedicated:call(name, ...)
  local u = upper(name)
  if DIRTIES[u] then self._dirty = true
  elseif TX_OPEN[u] then self._tx = true
  elseif TX_CLOSE[u] then self._tx = false end
  return self:_send(name, ...)
end

function Dedicated:_send(name, ...)
  local conn = self._conn
  if not conn then error(aio.InvalidStateError("aloop.redis: the connection was released"), 3) end
  conn:ensure()
  return conn:wait(conn:send(name, ...))
end

function Dedicated:release()
  local conn = self._conn
  if not conn then return end
  self._conn = nil
  local client = self._client
  client._lent[conn] = nil
  client:_give(conn, self._dirty or self._tx)
end
Dedicated.__close = Dedicated.release
Dedicated.close = Dedicated.release

---------------------------------------------------------------------------------------------
-- Pipelines and transactions: commands collected in a C batch, sent in one write.

local Pipeline = with_command_methods { __name = "aloop.redis.Pipeline" }
Pipeline.__index = Pipeline

function Pipeline:call(name, ...)
  refuse(name, ...)
  self._batch:add(name, ...)
end

function Pipeline:_send(name, ...) self._batch:add(name, ...) end

-- Sends a batch on conn; returns its replies (a table with field n).
local function run_batch(conn, batch)
  conn:ensure()
  return conn:wait(conn:send_batch(batch))
end

-- r:pipeline(fn): fn(p) queues commands; one round trip; the replies in order (field n), or the
-- first error reply raised (after every reply was read).
-- A batch's buffer is kept for the owner's next pipeline once it was sent (and so emptied).
local function pipeline(self, fn, get_conn)
  local batch = self._spare_batch or core._redis.batch()
  self._spare_batch = nil
  fn(setmetatable({ _batch = batch }, Pipeline))
  if batch:count() == 0 then
    self._spare_batch = batch
    return { n = 0 }
  end
  local conn = get_conn(self)
  conn:ensure()
  local fut = conn:send_batch(batch)
  self._spare_batch = batch
  local res = conn:wait(fut)
  raise_first_error(res, 1, res.n)
  return res
end

function Client:pipeline(fn) return pipeline(self, fn, self._get_shared) end
function Dedicated:pipeline(fn)
  return pipeline(self, fn, function(d)
    if not d._conn then error(aio.InvalidStateError("aloop.redis: the connection was released"), 0) end
    return d._conn
  end)
end

local Transaction = with_command_methods { __name = "aloop.redis.Transaction" }
Transaction.__index = Transaction

-- Before tx:multi() (only with watch=) commands run at once and return their replies, so the
-- function can read what it watches; after it, they are queued for MULTI/EXEC.
function Transaction:call(name, ...)
  refuse(name, ...)
  return self:_send(name, ...)
end

function Transaction:_send(name, ...)
  if self._immediate then
    local conn = self._conn
    return conn:wait(conn:send(name, ...))
  end
  self._batch:add(name, ...)
end

function Transaction:multi()
  if self._immediate then
    self._immediate = false
  end
end

-- r:transaction(fn, {watch = {keys}}): MULTI/EXEC of what fn queues on tx; the replies (field n),
-- or nil when a watched key changed; an error reply raises.
function Client:transaction(fn, opts)
  local watch = opts and opts.watch
  if watch ~= nil and type(watch) ~= "table" then
    error("aloop.redis: transaction: watch must be a list of keys", 2)
  end
  if watch and #watch == 0 then watch = nil end
  local d <close> = self:acquire()
  local conn = d._conn
  if watch then
    d._tx = true
    conn:wait(conn:send("WATCH", unpack(watch)))
  end
  local tx = setmetatable({ _batch = core._redis.batch(), _conn = conn, _immediate = watch ~= nil },
    Transaction)
  tx._batch:add("MULTI")
  fn(tx)
  local n = tx._batch:count() - 1
  if n == 0 then
    if watch then conn:wait(conn:send("UNWATCH")) end
    d._tx = false
    return { n = 0 }
  end
  tx._batch:add("EXEC")
  d._tx = true
  local res = run_batch(conn, tx._batch)
  d._tx = false
  local exec = res[res.n]
  if getmetatable(exec) == ReplyError then -- EXECABORT: say which command was refused
    raise_first_error(res, 2, res.n - 1)
    error(exec, 0)
  end
  if exec == nil then return nil end
  exec.n = n
  for i = 1, n do
    if exec[i] == redis.null then exec[i] = nil end
  end
  raise_first_error(exec, 1, n)
  return exec
end

---------------------------------------------------------------------------------------------
-- Scripts: EVALSHA, loading the script again when the server does not know it (NOSCRIPT).

local Script = { __name = "aloop.redis.Script" }
Script.__index = Script

function Client:script(src)
  if type(src) ~= "string" then error("aloop.redis: script: the Lua source expected", 2) end
  return setmetatable({ _client = self, source = src }, Script)
end

-- script:call(keys, args) (also script(keys, args)): runs it with EVALSHA.
function Script:call(keys, args)
  keys, args = keys or {}, args or {}
  local r = self._client
  local argv = { #keys }
  table.move(keys, 1, #keys, 2, argv)
  table.move(args, 1, #args, #argv + 1, argv)
  for _ = 1, 2 do
    if not self.sha then self.sha = r:call("SCRIPT", "LOAD", self.source) end
    local ok, res = pcall(r.call, r, "EVALSHA", self.sha, unpack(argv))
    if ok then return res end
    if getmetatable(res) ~= ReplyError or res.code ~= "NOSCRIPT" then error(res, 0) end
    self.sha = nil
  end
  error(aio.Error("aloop.redis: the server forgot the script right after loading it"), 0)
end
Script.__call = Script.call

---------------------------------------------------------------------------------------------
-- redis.connect(url, opts)

local function check_opts(o)
  local ps = o.pool_size or redis.DEFAULT_POOL_SIZE
  if math.type(ps) ~= "integer" or ps < 1 then
    error("aloop.redis: pool_size must be a positive integer", 3)
  end
  o.pool_size = ps
  for _, k in ipairs { "timeout", "connect_timeout" } do
    if o[k] ~= nil and (type(o[k]) ~= "number" or o[k] <= 0) then
      error(("aloop.redis: %s must be a positive number"):format(k), 3)
    end
  end
  o.connect_timeout = o.connect_timeout or o.timeout or 10
  if o.ssl ~= nil and type(o.ssl) ~= "boolean" and not core._is_sslcontext(o.ssl) then
    error("aloop.redis: ssl must be true, false or an aio.ssl context", 3)
  end
  return o
end

-- connect(url, opts) or connect(opts): a client. Inside a task the first connection is made
-- (and its errors raised) now; elsewhere on the first command.
function redis.connect(url, opts)
  if type(url) == "table" then url, opts = nil, url end
  if opts ~= nil and type(opts) ~= "table" then
    error("aloop.redis: connect: options must be a table", 2)
  end
  local o = parse_url(url or "redis://127.0.0.1:6379/0")
  for k, v in pairs(opts or {}) do o[k] = v end
  check_opts(o)
  local self = setmetatable({
    _opts = o, _idle = {}, _lent = {}, _count = 0, _waiters = { head = 1, tail = 0 },
  }, Client)
  if running_loop() and core.current_task() then self:_get_shared() end
  return self
end

-- Pub/sub (aloop.redis.pubsub): r:subscribe(...), r:psubscribe(...).
local pubsub = require "aloop.redis.pubsub"
function Client:subscribe(...) return pubsub.new(self._opts, client_loop(self)):subscribe(...) end
function Client:psubscribe(...) return pubsub.new(self._opts, client_loop(self)):psubscribe(...) end
function Client:pubsub() return pubsub.new(self._opts, client_loop(self)) end

return redis
