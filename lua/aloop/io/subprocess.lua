-- Subprocesses (API.md §7): the Lua half of process.c. The child is spawned and reaped in C;
-- here its pipes become pipe transports (stream_transport.c), the SubprocessProtocol is called
-- (pipe_data_received, pipe_connection_lost, process_exited, connection_lost), and the
-- high-level Process wraps the pipes in a StreamWriter (stdin) and StreamReaders (stdout,
-- stderr). loop:subprocess_exec/subprocess_shell, aio.create_subprocess_exec/_shell.
local core = require "aloop.core"
local coro = require "aloop.core.coro"
local tasks = require "aloop.core.tasks"
local connections = require "aloop.net.connections"
local streams = require "aloop.net.streams"
local blame = require "aloop.core.blame"

-- This file's part of the public table (init.lua picks its public names), indented as a block.
local aio = {}
do
  local await = core.await_future
  local PIPE, STDOUT, DEVNULL = -1, -2, -3 -- the values Python's subprocess module uses
  aio.subprocess = { PIPE = PIPE, STDOUT = STDOUT, DEVNULL = DEVNULL }
  local Loop, ST = core.Loop, core.SubprocessTransport
  local DEFAULT_LIMIT = 65536

  local KNOWN = { stdin = true, stdout = true, stderr = true, cwd = true, env = true, limit = true,
    pass_fds = true, start_new_session = true, process_group = true }

  local function bad(fn, fmt, ...) blame.error(("aloop.%s: " .. fmt):format(fn, ...)) end

  local function has_fileno(v)
    local ok, f = pcall(function() return v.fileno end)
    return ok and type(f) == "function"
  end

  -- Checks the options table and returns it (or {}): a mistake is an error naming the option.
  local function check_opts(fn, opts)
    if opts == nil then return {} end
    if type(opts) ~= "table" then bad(fn, "options must be a table (got %s)", type(opts)) end
    for k in pairs(opts) do
      if not KNOWN[k] then bad(fn, "unknown option '%s'", tostring(k)) end
    end
    for _, name in ipairs { "stdin", "stdout", "stderr" } do
      local v = opts[name]
      if math.type(v) == "integer" then
        if v == STDOUT and name ~= "stderr" then bad(fn, "STDOUT is only valid for stderr") end
        if v < DEVNULL then bad(fn, "%s: invalid value %d", name, v) end
      elseif io.type(v) == "closed file" then
        bad(fn, "%s: the file is closed", name)
      elseif v ~= nil and io.type(v) ~= "file" and not has_fileno(v) then
        bad(fn, "%s must be PIPE, STDOUT, DEVNULL, an fd or a file (got %s)", name, tostring(v))
      end
    end
    if opts.cwd ~= nil and type(opts.cwd) ~= "string" then bad(fn, "cwd must be a string") end
    if opts.env ~= nil and type(opts.env) ~= "table" then bad(fn, "env must be a table") end
    if opts.pass_fds ~= nil and type(opts.pass_fds) ~= "table" then
      bad(fn, "pass_fds must be a list of fds")
    end
    local pg = opts.process_group
    if pg ~= nil and (math.type(pg) ~= "integer" or pg < 0) then
      bad(fn, "process_group must be a process group id >= 0 (0: a new group), got %s",
        tostring(pg))
    end
    local limit = opts.limit
    if limit ~= nil and (math.type(limit) ~= "integer" or limit <= 0) then
      bad(fn, "limit must be a positive integer (got %s)", tostring(limit))
    end
    return opts
  end

  -- Splits (program, arg1, ..., [opts]) or ({program, arg1, ...}, [opts]) into argv and opts.
  local function exec_args(fn, program, ...)
    local args, n, opts
    if type(program) == "table" then -- an argv table
      args, n, opts = program, #program, ...
      if select("#", ...) > 1 or (opts ~= nil and type(opts) ~= "table") then
        bad(fn, "with an argv table, only an options table may follow")
      end
      program = args[1]
    else
      args, n = table.pack(program, ...), select("#", ...) + 1
      opts = n > 1 and type(args[n]) == "table" and args[n] or nil
      if opts then n = n - 1 end
    end
    if type(program) ~= "string" or program == "" then
      bad(fn, "the program must be a non-empty string (got %s)", tostring(program))
    end
    local argv = { program }
    for i = 2, n do
      local a = args[i]
      if type(a) ~= "string" and type(a) ~= "number" then
        bad(fn, "argument %d must be a string (got %s)", i - 1, type(a))
      end
      argv[i] = tostring(a)
    end
    return argv, check_opts(fn, opts)
  end

  local function shell_args(fn, cmd, opts)
    if type(cmd) ~= "string" then bad(fn, "cmd must be a string (got %s)", type(cmd)) end
    return { "/bin/sh", "-c", cmd }, check_opts(fn, opts)
  end

  ---------------------------------------------------------------------------------------------
  -- SubprocessTransport: C methods (get_pid, get_returncode, send_signal, terminate, kill) plus
  -- these. Its state table (tr:_state()) holds the protocol, the pipe transports by fd, the
  -- number of pipes still open and the futures wait() hands out.

  local function call(st, name, ...)
    local proto = st.protocol
    local m = proto and proto[name]
    if m then m(proto, ...) end
  end

  -- connection_lost(nil) once the child is reaped and every pipe is closed.
  local function try_finish(tr, st)
    if st.finished or tr:get_returncode() == nil or st.open > 0 then return end
    st.finished = true
    call(st, "connection_lost", nil)
  end

  -- The child exited: its stdin pipe is closed (what is buffered is still flushed), and its read
  -- pipes in stream mode take what the child left in them, past a full StreamReader's limit, so
  -- they reach their EOF and close: no fd outlives a process that was waited for, even when
  -- nobody reads its output (a protocol's pipes are left as the protocol paused them).
  local function on_exit(tr)
    local st = tr:_state()
    if st.pipes[0] then st.pipes[0]:close() end
    for fd = 1, 2 do
      if st.pipes[fd] then st.pipes[fd]:_read_rest() end
    end
    call(st, "process_exited")
    local rc = tr:get_returncode()
    local waiters = st.waiters
    st.waiters = {}
    for _, f in ipairs(waiters) do
      if not f:done() then f:set_result(rc) end
    end
    try_finish(tr, st)
  end

  -- The protocol of one pipe transport in protocol mode: forwards to the subprocess protocol.
  local function pipe_protocol(tr, st, fd)
    return {
      data_received = function(_, data) call(st, "pipe_data_received", fd, data) end,
      pause_writing = function() call(st, "pause_writing") end,
      resume_writing = function() call(st, "resume_writing") end,
      connection_lost = function(_, exc)
        st.open = st.open - 1
        call(st, "pipe_connection_lost", fd, exc)
        try_finish(tr, st)
      end,
    }
  end

  -- Spawns argv and makes its pipe transports. With a protocol, the pipes call it; with
  -- stream_limit instead, they are stream-mode transports for StreamReader/StreamWriter.
  local function start(loop, argv, opts, protocol, stream_limit)
    local tr, s0, s1, s2 = core._spawn(loop, argv, opts.stdin, opts.stdout, opts.stderr, opts.cwd,
      opts.env, opts.pass_fds, opts.start_new_session, opts.process_group)
    local st = tr:_state()
    st.protocol, st.pipes, st.open, st.waiters, st.loop = protocol, {}, 0, {}, loop
    tr:_set_on_exit(on_exit)
    for fd, sock in pairs { [0] = s0, s1, s2 } do
      local ptr = core._transport(loop, sock, stream_limit and {} or pipe_protocol(tr, st, fd), "pipe")
      if fd == 0 then ptr:pause_reading() end -- a write pipe is never read
      if stream_limit then ptr:_reader(stream_limit) else st.open = st.open + 1 end
      st.pipes[fd] = ptr
    end
    return tr, st
  end

  function ST:get_pipe_transport(fd) return self:_state().pipes[fd] end
  function ST:get_protocol() return self:_state().protocol end
  function ST:get_loop() return self:_state().loop end
  function ST:is_closing() return self:_state().closed == true end
  function ST:get_extra_info(name, default)
    if name == "subprocess" then return self end
    return default
  end

  -- close(): closes the pipes and kills the child if it is still running (not if it exited).
  function ST:close()
    local st = self:_state()
    if st.closed then return end
    st.closed = true
    for _, ptr in pairs(st.pipes) do ptr:close() end
    if self:get_returncode() == nil then self:kill() end
  end

  -- _wait(): suspends until the child is reaped; returns its returncode. Cancelling the
  -- waiting task cancels only its own future.
  function ST:_wait()
    local rc = self:get_returncode()
    if rc ~= nil then return rc end
    local st = self:_state()
    local f = st.loop:create_future()
    st.waiters[#st.waiters + 1] = f
    return await(f, "Process.wait")
  end

  local mt = core._SubprocessTransport_mt
  mt.__close = function(tr) tr:close() end

  local function subprocess(loop, factory, argv, opts)
    local protocol = connections.call_factory(factory)
    local tr = start(loop, argv, opts, protocol)
    call(tr:_state(), "connection_made", tr)
    return tr, protocol
  end

  -- loop:subprocess_exec(factory, program, arg1, ..., opts) -> transport, protocol
  function Loop:subprocess_exec(factory, ...)
    local argv, opts = exec_args("subprocess_exec", ...)
    return subprocess(self, factory, argv, opts)
  end

  -- loop:subprocess_shell(factory, cmd, opts) -> transport, protocol
  function Loop:subprocess_shell(factory, cmd, opts)
    local argv, o = shell_args("subprocess_shell", cmd, opts)
    return subprocess(self, factory, argv, o)
  end

  ---------------------------------------------------------------------------------------------
  -- Process (high level).

  local Process = { __name = "aloop.Process" }
  aio.Process = Process

  function Process.__index(self, k)
    if k == "returncode" then return self._transport:get_returncode() end
    return Process[k]
  end

  function Process:wait() return self._transport:_wait() end
  function Process:send_signal(sig) return self._transport:send_signal(sig) end
  function Process:terminate() return self._transport:terminate() end
  function Process:kill() return self._transport:kill() end

  local function pipe_gone(err)
    return core.iserror(err, core.BrokenPipeError) or core.iserror(err, core.ConnectionResetError)
  end

  -- communicate(input) -> stdout_data, stderr_data: feeds input to stdin (then closes it) while
  -- reading stdout and stderr to EOF, then waits for the exit. A child that exits without
  -- reading its input is not an error (the broken pipe is ignored).
  function Process:communicate(input)
    if not core.current_task() then error(core._not_in_task("Process.communicate"), 2) end
    local stdin, stdout, stderr = self.stdin, self.stdout, self.stderr
    local function feed()
      if not stdin then return end
      if input ~= nil and input ~= "" then
        local ok, err = pcall(function()
          stdin:write(input)
          stdin:drain()
        end)
        if not ok and not pipe_gone(err) and not stdin:is_closing() then error(err, 0) end
      end
      stdin:close()
    end
    local function read_all(r)
      if r then return r:read() end
    end
    local res = tasks.gather(coro.coro(feed), coro.coro(read_all, stdout), coro.coro(read_all, stderr))
    self:wait()
    return res[2], res[3]
  end

  -- local p <close> = create_subprocess_exec(...): closes the pipes, kills the child if it is
  -- still running, and inside a task waits until it is reaped (no zombie, no watcher left).
  function Process:__close()
    local tr = self._transport
    local running = tr:get_returncode() == nil
    tr:close()
    if running and core.current_task() then tr:_wait() end
  end

  function Process:__tostring()
    local rc = self.returncode
    return ("<aloop.Process %d %s>"):format(self.pid, rc == nil and "running" or "returncode=" .. rc)
  end

  local function running_loop(fn)
    local loop = core._running_loop()
    if not loop then error(core._not_in_task(fn), 3) end
    return loop
  end

  local function new_process(loop, argv, opts)
    local limit = opts.limit or DEFAULT_LIMIT
    local tr, st = start(loop, argv, opts, nil, limit)
    local p = setmetatable({ pid = tr:get_pid(), _transport = tr }, Process)
    local pipes = st.pipes
    if pipes[0] then p.stdin = select(2, streams.streams(pipes[0], limit)) end
    if pipes[1] then p.stdout = streams.streams(pipes[1], limit) end
    if pipes[2] then p.stderr = streams.streams(pipes[2], limit) end
    return p
  end

  -- create_subprocess_exec(program, arg1, ..., {stdin=, stdout=, stderr=, cwd=, env=, limit=,
  -- pass_fds=}) -> Process. Raises OSError (errno ENOENT) when the program is not found.
  function aio.create_subprocess_exec(...)
    local loop = running_loop("create_subprocess_exec")
    local argv, opts = exec_args("create_subprocess_exec", ...)
    return new_process(loop, argv, opts)
  end

  -- create_subprocess_shell(cmd, opts) -> Process: cmd runs under /bin/sh -c.
  function aio.create_subprocess_shell(cmd, opts)
    local loop = running_loop("create_subprocess_shell")
    local argv, o = shell_args("create_subprocess_shell", cmd, opts)
    return new_process(loop, argv, o)
  end
end

return aio
