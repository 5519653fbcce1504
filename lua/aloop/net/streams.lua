-- Streams (API.md §6) over stream-mode transports: a StreamReader's buffer lives in C
-- (src/net/stream_reader.c, fed by any stream: socket, pipe, TLS); its C methods take what it
-- holds and, when it has not enough, park the task on the buffer itself until more comes.
-- aio.open_connection, aio.start_server (a task per client).
local core = require "aloop.core"
local tls = require "aloop.net.tls"

-- This file's part of the public table (init.lua picks its public names), indented as a block.
local aio = {}
do
  local await = core.await_future
  local running_loop = core._running_loop
  local DEFAULT_LIMIT = 65536

  local StreamReader = { __name = "aloop.StreamReader" }
  StreamReader.__index = StreamReader
  local StreamWriter = { __name = "aloop.StreamWriter" }
  StreamWriter.__index = StreamWriter
  aio.StreamReader, aio.StreamWriter = StreamReader, StreamWriter

  local function loop_of(fn)
    local loop = running_loop()
    if not loop then error(core._not_in_task(fn), 3) end
    return loop
  end

  -- The StreamReader's methods are C calls on the object (src/net/stream_reader.c): each takes
  -- what its buffer (_buffer) holds or parks the task on it until more comes. read() to the
  -- end and bad sizes come back here.
  local buf_read = core._reader_methods.read
  local function read_slow(self, n)
    n = n or -1
    if not math.tointeger(n) then -- NaN must not mean "to EOF"
      error(("aloop.StreamReader:read: an integer size expected, got %s"):format(tostring(n)), 3)
    end
    local buf = self._buffer
    if n >= 0 then return buf_read(buf, n) end
    local parts = {}
    while true do
      local d = buf_read(buf, self._limit)
      if d == "" then return table.concat(parts) end
      parts[#parts + 1] = d
    end
  end
  for name, fn in pairs(core._stream_reader_methods(read_slow)) do StreamReader[name] = fn end

  setmetatable(StreamReader, { __call = function(_, limit)
    if limit ~= nil and (math.type(limit) ~= "integer" or limit <= 0) then
      error("aloop.StreamReader: limit must be a positive integer, got " .. tostring(limit), 2)
    end
    limit = limit or DEFAULT_LIMIT
    local loop = running_loop() or core.get_event_loop()
    return setmetatable({ _buffer = core._reader_new(loop, limit), _limit = limit }, StreamReader)
  end })
  -- for line in reader:lines() do ... end
  function StreamReader:lines()
    return function()
      local line = self:readline()
      if line ~= "" then return line end
    end
  end

  -- The StreamWriter's methods are its transport's own C methods (they take the writer for its
  -- transport). drain() waits while the write buffer is over the high-water mark (one C call)
  -- and raises once the connection is lost; several tasks may drain at once.
  do
    local tm = core._transport_methods
    for _, name in ipairs { "write", "writelines", "write_eof", "can_write_eof", "close",
      "is_closing", "get_extra_info" } do
      StreamWriter[name] = tm[name]
    end
    StreamWriter.drain = tm._drain
  end

  -- writer:start_tls(ctx, {server_side=, server_hostname=, ssl_handshake_timeout=}): upgrades
  -- this stream pair to TLS in place (the reader goes on reading cleartext).
  function StreamWriter:start_tls(ctx, opts)
    tls.writer_start_tls(self, ctx, opts)
  end

  function StreamWriter:wait_closed()
    local f = self.transport:_wait_closed()
    if f then await(f, "StreamWriter.wait_closed") end
  end

  -- local w <close> = writer: closes, and inside a task waits until the fd is closed.
  function StreamWriter:__close()
    self.transport:close()
    if core.current_task() then self:wait_closed() end
  end

  -- The reader and writer of a stream-mode transport (tr:_reader(limit) made it one).
  local function streams(tr, limit)
    return setmetatable({ _buffer = tr:_reader(limit), _limit = limit }, StreamReader),
      setmetatable({ transport = tr }, StreamWriter)
  end
  aio.streams = streams -- aloop.io.subprocess: a Process's pipes (not public)

  local function stream_protocol(limit, on_made)
    return {
      connection_made = function(_, tr)
        tr:_reader(limit)
        if on_made then on_made(tr) end
      end,
    }
  end

  -- Connects with loop[method](loop, factory, ...) and returns the reader and writer.
  local function open_with(fn, method, opts, ...)
    local loop = loop_of(fn)
    local limit = opts and opts.limit or DEFAULT_LIMIT
    local tr = loop[method](loop, function() return stream_protocol(limit) end, ...)
    return streams(tr, limit)
  end

  -- open_connection(host, port, {limit=, ...}) -> reader, writer
  function aio.open_connection(host, port, opts)
    if (host == nil or port == nil) and not (opts and opts.sock) then
      error("aloop.open_connection: host and port are required without opts.sock", 2)
    end
    return open_with("open_connection", "create_connection", opts, host, port, opts)
  end

  -- open_unix_connection(path, {limit=, ...}) -> reader, writer
  function aio.open_unix_connection(path, opts)
    return open_with("open_unix_connection", "create_unix_connection", opts, path, opts)
  end

  -- A protocol factory running cb(reader, writer) as a task per connection; an error in a
  -- client task is reported and aborts only that connection. A handler that returns without
  -- closing leaves the connection to the peer: it closes when the peer's EOF comes (at once
  -- when it came already), so a departed client never holds an fd.
  local function client_factory(loop, cb, limit)
    local function on_made(tr)
      local task = loop:create_task(cb, streams(tr, limit))
      task:add_done_callback(function(t)
        local err = not t:cancelled() and t:exception() or nil
        if err == nil then return tr:_close_at_eof() end
        loop:call_exception_handler { message = "Unhandled exception in client_connected_cb",
          exception = err, transport = tr, task = t }
        tr:abort()
      end)
    end
    return function() return stream_protocol(limit, on_made) end
  end

  -- start_server(cb, host, port, opts) -> Server; cb(reader, writer) runs as a task per client.
  function aio.start_server(cb, host, port, opts)
    local loop = loop_of("start_server")
    local limit = opts and opts.limit or DEFAULT_LIMIT
    return loop:create_server(client_factory(loop, cb, limit), host, port, opts)
  end

  -- start_unix_server(cb, path, opts) -> Server
  function aio.start_unix_server(cb, path, opts)
    local loop = loop_of("start_unix_server")
    local limit = opts and opts.limit or DEFAULT_LIMIT
    return loop:create_unix_server(client_factory(loop, cb, limit), path, opts)
  end
end

return aio
