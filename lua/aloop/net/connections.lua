-- Networking glue over the C core (src/net/): loop:create_connection,
-- loop:create_server and Server objects, loop:connect_accepted_socket, and the curio-style
-- loop:sock_connect/sock_accept/sock_recv/sock_sendall. The I/O, the buffers and the protocol
-- calls are in C; this file resolves addresses, connects, binds and keeps servers' state.
local core = require "aloop.core"
local worker = require "aloop.workers.worker"

local connections = {}

local Loop = core.Loop
local socket = core.socket
local await = core.await_future
local SOCK_STREAM, EINPROGRESS = socket.SOCK_STREAM, socket.EINPROGRESS
local EADDRINUSE, ECONNREFUSED = core.errno.EADDRINUSE, core.errno.ECONNREFUSED

local function raise_errno(err, what) error(core._oserror(err, what), 0) end

-- Raises "aloop.<what>: not inside a task; use ..." at the public function's caller.
local function need_task(what)
  if not core.current_task() then error(core._not_in_task(what), 3) end
end

-- Literal addresses and "localhost" resolve at once; other names on the DNS threads.
local function resolve(loop, host, port, family, type, passive)
  local r = core._getaddrinfo(host, port, family, type, passive)
  if r then return r end
  if not core.current_task() then error(core._not_in_task("getaddrinfo"), 0) end
  return await(core._dns_getaddrinfo(loop, host, port, family, type, passive))
end

-- Waits until fd is readable (add = "add_reader") or writable; the watcher is gone before
-- this returns or raises (a cancelled wait never leaves a watcher on a reused fd number).
-- `what` names the public call for the error outside a task.
local function wait_fd(loop, fd, add, remove, what)
  if not core.current_task() then error(core._not_in_task(what), 0) end
  local fut = loop:create_future()
  loop[add](loop, fd, function() if not fut:done() then fut:set_result() end end)
  local ok, err = pcall(await, fut)
  loop[remove](loop, fd)
  if not ok then error(err, 0) end
end

function Loop:sock_connect(s, addr)
  local err = s:connect_ex(addr)
  if err == 0 then return end
  if err ~= EINPROGRESS then raise_errno(err, "connect " .. tostring(addr)) end
  wait_fd(self, s:fileno(), "add_writer", "remove_writer", "sock_connect")
  err = s:so_error()
  if err ~= 0 then raise_errno(err, "connect " .. tostring(addr)) end
end

function Loop:sock_accept(s)
  while true do
    local c, addr = s:accept()
    if c then return c, addr end
    wait_fd(self, s:fileno(), "add_reader", "remove_reader", "sock_accept")
  end
end

function Loop:sock_recv(s, n)
  while true do
    local data = s:recv(n)
    if data then return data end
    wait_fd(self, s:fileno(), "add_reader", "remove_reader", "sock_recv")
  end
end

function Loop:sock_sendall(s, data)
  local i = 1
  while true do
    i = i + s:send(data, i)
    if i > #data then return end
    wait_fd(self, s:fileno(), "add_writer", "remove_writer", "sock_sendall")
  end
end

function connections.call_factory(factory)
  local protocol = factory()
  if protocol == nil then error("aloop: the protocol factory returned nil", 3) end
  return protocol
end
local call_factory = connections.call_factory

local tls = require "aloop.net.tls"

-- The client context for opts.ssl (checked before connecting), or nil.
local function client_context(opts, what)
  if opts.ssl then return tls.context(opts.ssl, false, what) end
  if opts.server_hostname ~= nil then
    error(("aloop.%s: server_hostname is only meaningful with ssl"):format(what), 3)
  end
end

-- A connected socket becomes a transport: with a context, after the TLS handshake.
local function connect_transport(loop, sock, factory, ctx, opts, host, what)
  local protocol = call_factory(factory)
  if ctx then return tls.connect(loop, sock, protocol, ctx, opts, host, what), protocol end
  return core._transport(loop, sock, protocol), protocol
end

-- With opts.ssl a server's connections shake hands before the protocol sees them.
local function server_factory(factory, opts, what)
  if opts.ssl then return tls.server_factory(factory, opts, what) end
  return factory
end

-- create_connection(factory, host, port, {sock=, family=, local_addr=, ssl=, server_hostname=,
-- ssl_handshake_timeout=, ssl_shutdown_timeout=}) -> transport, protocol
function Loop:create_connection(factory, host, port, opts)
  opts = opts or {}
  local ctx = client_context(opts, "create_connection")
  local sock = opts.sock
  if not sock then
    need_task("create_connection") -- it will connect: it suspends
    if host == nil or port == nil then
      error("aloop.create_connection: host and port are required without opts.sock", 2)
    end
    local errs = {}
    for _, ai in ipairs(resolve(self, host, port, opts.family, SOCK_STREAM)) do
      local s = socket.socket(ai.family, SOCK_STREAM)
      local ok, err = pcall(function()
        if opts.local_addr then s:bind(opts.local_addr) end
        self:sock_connect(s, ai.addr)
      end)
      if ok then
        sock = s
        break
      end
      s:close()
      if not core.iserror(err, core.OSError) then error(err, 0) end -- cancelled: no next address
      errs[#errs + 1] = err
    end
    if not sock then
      if #errs == 1 then error(errs[1], 0) end
      local msgs = {}
      for i, e in ipairs(errs) do msgs[i] = tostring(e) end
      error(core.OSError("Multiple exceptions: " .. table.concat(msgs, ", ")), 0)
    end
  end
  return connect_transport(self, sock, factory, ctx, opts, host, "create_connection")
end

function Loop:connect_accepted_socket(factory, sock)
  local protocol = call_factory(factory)
  return core._transport(self, sock, protocol), protocol
end

---------------------------------------------------------------------------------------------
-- Servers

local Server = { __name = "aloop.Server" }
Server.__index = Server

-- The servers not closed yet (weak: a dropped server is not kept), for the REPL's reminders.
connections.open_servers = setmetatable({}, { __mode = "k" })

function Server:get_loop() return self._loop end
function Server:is_serving() return self._serving end

-- The Server counts its connections (asyncio 3.12+): wait_closed() waits until it is closed
-- and every connection has closed; close_clients()/abort_clients() end them.
local function wake_all(list)
  for _, f in ipairs(list) do
    if not f:done() then f:set_result() end
  end
end

-- Wakes the wait_closed() waiters once the server is closed and has no connection left.
local function maybe_wake(self)
  if not self._closed or next(self._clients) ~= nil then return end
  local waiters = self._waiters
  self._waiters = {}
  wake_all(waiters)
end

-- A new connection (the listener's on_conn): counted until its fd is closed.
local function track(self, tr)
  local f = tr:_wait_closed()
  if not f then return end
  self._clients[tr] = true
  f:add_done_callback(function()
    self._clients[tr] = nil
    maybe_wake(self)
  end)
end

function Server:start_serving()
  if self._closed or self._serving then return end
  self._serving = true
  for i, s in ipairs(self.sockets) do
    if not self._listeners[i] then
      self._listeners[i] = core._listener(self._loop, s, self._factory, self._track)
    end
    self._listeners[i]:start()
  end
end

-- close(): stops listening; the connections stay (close_clients() ends them).
function Server:close()
  if self._closed then return end
  self._closed, self._serving = true, false
  connections.open_servers[self] = nil
  for _, ls in ipairs(self._listeners) do ls:close() end
  for _, s in ipairs(self.sockets) do s:close() end
  if self._unlink then os.remove(self._unlink) end
  local forever = self._forever_fut
  if forever and not forever:done() then forever:set_result() end
  maybe_wake(self)
end

function Server:close_clients()
  for tr in pairs(self._clients) do tr:close() end
end

function Server:abort_clients()
  for tr in pairs(self._clients) do tr:abort() end
end

-- wait_closed(): until the server is closed and its connections are. One future per waiting
-- task, so cancelling one waiter leaves the others waiting; done ones leave the list.
function Server:wait_closed()
  if self._closed and next(self._clients) == nil then return end
  need_task("Server.wait_closed")
  local kept = {}
  for _, f in ipairs(self._waiters) do
    if not f:done() then kept[#kept + 1] = f end
  end
  local f = self._loop:create_future()
  kept[#kept + 1] = f
  self._waiters = kept
  await(f)
end

-- serve_forever(): serves until the server is closed; cancelling it closes the server.
function Server:serve_forever()
  need_task("Server.serve_forever")
  if self._forever then error("aloop: server is already being awaited on serve_forever()", 2) end
  if self._closed then error("aloop: server is closed", 2) end
  self:start_serving()
  self._forever = true
  self._forever_fut = self._loop:create_future()
  local ok, err = pcall(await, self._forever_fut)
  self._forever = false
  if not ok then
    self:close()
    error(err, 0)
  end
end

Server.__close = Server.close
function Server.__tostring(s)
  local names = {}
  for i, sock in ipairs(s.sockets) do
    local ok, n = pcall(sock.getsockname, sock)
    names[i] = ok and tostring(n) or "closed"
  end
  return "<aloop.Server " .. table.concat(names, " ") .. ">"
end

local function new_server(loop, sockets, factory, opts)
  local server = setmetatable({ sockets = sockets, _loop = loop, _factory = factory,
    _listeners = {}, _serving = false, _closed = false, _waiters = {}, _clients = {} }, Server)
  server._track = function(tr) track(server, tr) end
  connections.open_servers[server] = true
  for _, s in ipairs(sockets) do s:listen(opts.backlog or 100) end
  worker.add_server(server)
  if opts.start_serving ~= false then server:start_serving() end
  return server
end

local function bind_all(loop, host, port, opts)
  local sockets = {}
  local ok, err = pcall(function()
    for _, h in ipairs(type(host) == "table" and host or { host or "" }) do
      for _, ai in ipairs(resolve(loop, h, port, opts.family, SOCK_STREAM, true)) do
        local shared = worker.shared_socket(ai, opts) -- under `aloop --workers`
        if shared then
          sockets[#sockets + 1] = shared
        else
          local s = socket.socket(ai.family, SOCK_STREAM)
          sockets[#sockets + 1] = s
          if opts.reuse_address ~= false then s:setoption("reuse_address", true) end
          if opts.reuse_port then s:setoption("reuse_port", true) end
          if ai.family == socket.AF_INET6 then s:setoption("v6only", true) end
          s:bind(ai.addr)
        end
      end
    end
  end)
  if not ok then
    for _, s in ipairs(sockets) do s:close() end
    error(err, 0)
  end
  return sockets
end

-- create_server(factory, host, port, {sock=, backlog=, reuse_address=, reuse_port=,
-- start_serving=, family=, ssl=, ssl_handshake_timeout=, ssl_shutdown_timeout=}) -> Server.
-- host nil or "" listens on every interface.
function Loop:create_server(factory, host, port, opts)
  opts = opts or {}
  factory = server_factory(factory, opts, "create_server")
  local sockets = opts.sock and { opts.sock } or bind_all(self, host, port or 0, opts)
  return new_server(self, sockets, factory, opts)
end

---------------------------------------------------------------------------------------------
-- Unix sockets

function Loop:create_unix_connection(factory, path, opts)
  opts = opts or {}
  local ctx = client_context(opts, "create_unix_connection")
  local sock = opts.sock
  if not sock then
    need_task("create_unix_connection") -- it will connect: it suspends
    sock = socket.socket("unix")
    local ok, err = pcall(self.sock_connect, self, sock, path)
    if not ok then
      sock:close()
      error(err, 0)
    end
  end
  return connect_transport(self, sock, factory, ctx, opts, nil, "create_unix_connection")
end

-- create_unix_server(factory, path, {sock=, backlog=, start_serving=}): a stale socket file
-- (nobody accepting) is replaced; the file is removed when the server closes (under `aloop
-- --workers`: when the supervisor closes the socket it bound for every worker).
function Loop:create_unix_server(factory, path, opts)
  opts = opts or {}
  factory = server_factory(factory, opts, "create_unix_server")
  local sock, shared = opts.sock, nil
  if not sock then -- under `aloop --workers` the supervisor binds the path, once for all
    shared = worker.shared_socket({ family = socket.AF_UNIX, addr = path }, opts)
    sock = shared
  end
  if not sock then
    sock = socket.socket("unix")
    local ok, err = pcall(sock.bind, sock, path)
    if not ok and err.errno == EADDRINUSE then -- is someone listening there?
      local probe = socket.socket("unix")
      local alive = probe:connect_ex(path)
      probe:close()
      if alive == ECONNREFUSED then -- nobody: a stale file
        os.remove(path)
        ok, err = pcall(sock.bind, sock, path)
      end
    end
    if not ok then
      sock:close()
      error(err, 0)
    end
  end
  local server = new_server(self, { sock }, factory, opts)
  if not opts.sock and not shared then server._unlink = path end -- a shared one: the supervisor
  return server
end

---------------------------------------------------------------------------------------------
-- Pipes: the transport owns a duplicate of the pipe's fd (the caller's file stays open).

function Loop:connect_read_pipe(factory, pipe)
  local protocol = call_factory(factory)
  return core._transport(self, core._fdobj(pipe), protocol, "pipe"), protocol
end

function Loop:connect_write_pipe(factory, pipe)
  local protocol = call_factory(factory)
  local tr = core._transport(self, core._fdobj(pipe), protocol, "pipe")
  tr:pause_reading() -- a write pipe is never read
  return tr, protocol
end

---------------------------------------------------------------------------------------------
-- Datagrams

-- create_datagram_endpoint(factory, {local_addr=, remote_addr=, family=, reuse_port=,
-- allow_broadcast=, sock=}) -> transport, protocol
function Loop:create_datagram_endpoint(factory, opts)
  opts = opts or {}
  local sock, connected = opts.sock, false
  if not sock then
    local la, ra = opts.local_addr, opts.remote_addr
    local family = opts.family
    local lai = la and self:getaddrinfo(la[1], la[2], { family = family, type = socket.SOCK_DGRAM, passive = true })[1]
    local rai = ra and self:getaddrinfo(ra[1], ra[2], { family = family or (lai and lai.family), type = socket.SOCK_DGRAM })[1]
    family = (lai or rai or {}).family or socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    local ok, err = pcall(function()
      if opts.reuse_port then sock:setoption("reuse_port", true) end
      if opts.allow_broadcast then sock:setoption("broadcast", true) end
      if lai then sock:bind(lai.addr) end
      if rai then self:sock_connect(sock, rai.addr) end
    end)
    if not ok then
      sock:close()
      error(err, 0)
    end
    connected = rai ~= nil
  end
  local protocol = call_factory(factory)
  return core._transport(self, sock, protocol, "datagram", connected), protocol
end

---------------------------------------------------------------------------------------------
-- Name resolution

-- loop:getaddrinfo(host, port, {family=, type=, passive=}) -> list of {family, type, addr}
function Loop:getaddrinfo(host, port, opts)
  opts = opts or {}
  return resolve(self, host, port, opts.family, opts.type or SOCK_STREAM, opts.passive)
end

-- loop:getnameinfo(addr) -> host, service
function Loop:getnameinfo(addr)
  if not core.current_task() then error(core._not_in_task("getnameinfo"), 2) end
  return await(core._dns_getnameinfo(self, addr))
end

return connections
