-- Subprocesses (src/io/process.c, lua/aloop/io/subprocess.lua): create_subprocess_exec/_shell and
-- Process, loop:subprocess_exec/_shell with a SubprocessProtocol, reaping, and the peers' bugs.
-- Every body runs as a task on a fresh loop (aloop.busted): a child left unreaped keeps its
-- pidfd watcher, which fails the test.
local aio = require "aloop"
local core = require "aloop.core"
local H = require "spec.helper"

local async = H.async
local PIPE, STDOUT, DEVNULL = aio.subprocess.PIPE, aio.subprocess.STDOUT, aio.subprocess.DEVNULL
local exec, shell = aio.create_subprocess_exec, aio.create_subprocess_shell

local function raises(cls, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_true(aio.iserror(err, cls), tostring(err))
  return err
end

local function raises_msg(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.matches(pattern, tostring(err))
end

-- The fds a child has open, from /proc, sorted.
local function child_fds(pid)
  local fds = {}
  local p = io.popen("ls /proc/" .. pid .. "/fd")
  for l in p:lines() do fds[#fds + 1] = tonumber(l) end
  p:close()
  table.sort(fds)
  return fds
end

describe("create_subprocess_exec", function()
  it("reads a line of the child's stdout and waits for its exit code", async(function()
    local p = exec("echo", "hello", "world", { stdout = PIPE })
    assert.equal("hello world\n", p.stdout:readline())
    assert.equal(0, p:wait())
    assert.equal(0, p.returncode)
    assert.is_true(p.pid > 0)
  end))

  it("iterates the child's stdout by line", async(function()
    local p = exec("printf", "a\\nb\\nc\\n", { stdout = PIPE })
    local lines = {}
    for line in p.stdout:lines() do lines[#lines + 1] = line end
    assert.same({ "a\n", "b\n", "c\n" }, lines)
    p:wait()
  end))

  it("feeds stdin with write, drain and write_eof", async(function()
    local p = exec("cat", { stdin = PIPE, stdout = PIPE })
    p.stdin:write("one\ntwo\n")
    p.stdin:drain()
    p.stdin:write_eof()
    assert.equal("one\ntwo\n", p.stdout:read())
    assert.equal(0, p:wait())
  end))

  it("reports the exit status; returncode is nil while the child runs", async(function()
    local p = shell("read x; exit 3", { stdin = PIPE })
    assert.is_nil(p.returncode)
    p.stdin:close()
    assert.equal(3, p:wait())
  end))

  it("gives a negative signal number when the child is killed", async(function()
    local p = exec("sleep", "30")
    assert.is_true(p:kill())
    assert.equal(-9, p:wait())
    local q = exec("sleep", "30")
    q:terminate()
    assert.equal(-15, q:wait())
  end))

  it("sends signals by name or number", async(function()
    local p = exec("sleep", "30")
    p:send_signal("SIGUSR1")
    assert.equal(-aio.signal.SIGUSR1, p:wait())
    local q = exec("sleep", "30")
    q:send_signal(aio.signal.SIGHUP)
    assert.equal(-aio.signal.SIGHUP, q:wait())
  end))

  it("rejects a signal name that does not exist", async(function()
    local p = exec("sleep", "30")
    raises_msg("unknown signal 'SIGNOPE'", p.send_signal, p, "SIGNOPE")
    raises_msg("invalid signal number", p.send_signal, p, 9999)
    p:kill()
    p:wait()
  end))

  it("does not signal a child that was already reaped", async(function()
    local p = exec("true")
    p:wait()
    assert.is_false(p:send_signal("SIGTERM"))
    assert.is_false(p:kill())
    assert.equal(0, p.returncode)
  end))

  it("raises OSError with errno ENOENT for a missing program, leaking no fd", async(function()
    collectgarbage() -- fds of objects other specs dropped close now, not during the count
    local before = H.fd_count()
    local err = raises(aio.OSError, exec, "aloop-no-such-program", { stdin = PIPE, stdout = PIPE, stderr = PIPE })
    assert.equal(2, err.errno)
    assert.matches("aloop%-no%-such%-program", err.message)
    err = raises(aio.OSError, exec, "/nonexistent/prog")
    assert.equal(2, err.errno)
    assert.equal(before, H.fd_count())
  end))

  it("names a missing cwd in the error", async(function()
    local err = raises(aio.OSError, exec, "true", { cwd = "/nonexistent-dir" })
    assert.equal(2, err.errno)
    assert.matches("cwd '/nonexistent%-dir'", err.message)
  end))

  it("rejects bad option values with errors naming the option", async(function()
    raises_msg("unknown option 'stdn'", exec, "true", { stdn = PIPE })
    raises_msg("STDOUT is only valid for stderr", exec, "true", { stdout = STDOUT })
    raises_msg("stdin must be PIPE, STDOUT, DEVNULL, an fd or a file", exec, "true", { stdin = "pipe" })
    raises_msg("invalid value %-7", exec, "true", { stdin = -7 })
    raises_msg("limit must be a positive integer", exec, "true", { limit = 0 })
    raises_msg("cwd must be a string", exec, "true", { cwd = 1 })
    raises_msg("env must be a table", exec, "true", { env = "A=1" })
    raises_msg("the program must be a non%-empty string", exec, "")
    raises_msg("argument 1 must be a string", exec, "echo", true)
    raises_msg("cmd must be a string", shell, { "ls" })
    local f = io.tmpfile()
    f:close()
    raises_msg("stdout: the file is closed", exec, "true", { stdout = f })
  end))

  it("runs in cwd with exactly the env given", async(function()
    local p = exec("sh", "-c", "pwd; echo \"$A|$HOME\"", { stdout = PIPE, cwd = "/tmp", env = { A = "x y" } })
    assert.equal("/tmp\nx y|\n", p.stdout:read())
    p:wait()
  end))

  it("connects stdin to DEVNULL and stderr to stdout", async(function()
    local p = shell("cat; echo oops >&2", { stdin = DEVNULL, stdout = PIPE, stderr = STDOUT })
    assert.equal("oops\n", p.stdout:read())
    assert.equal(0, p:wait())
  end))

  it("writes to an fd or a Lua file given as stdout", async(function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    local p = exec("echo", "to file", { stdout = f })
    p:wait()
    f:close()
    local r = assert(io.open(path))
    assert.equal("to file\n", r:read("a"))
    r:close()
    os.remove(path)
  end))

  it("lets the child see only fds 0-2, even fds opened without close-on-exec", async(function()
    local f = assert(io.open("/dev/null")) -- Lua's io.open does not set O_CLOEXEC
    local p = exec("sleep", "30", { stdin = PIPE, stdout = PIPE })
    local fds = child_fds(p.pid)
    f:close()
    p:kill()
    p:wait()
    assert.same({ 0, 1, 2 }, fds)
  end))

  it("passes the fds in pass_fds and no other", async(function()
    local a, b = aio.socket.socketpair() -- close-on-exec: pass_fds clears it in the child only
    local fd = b:fileno()
    local p = exec("sleep", "30", { pass_fds = { fd } })
    local fds = child_fds(p.pid)
    p:kill()
    p:wait()
    a:close()
    b:close()
    assert.same({ 0, 1, 2, fd }, fds)
  end))

  it("communicate returns stdout and stderr", async(function()
    local p = shell("cat; echo err >&2", { stdin = PIPE, stdout = PIPE, stderr = PIPE })
    local out, err = p:communicate("in\n")
    assert.equal("in\n", out)
    assert.equal("err\n", err)
    assert.equal(0, p.returncode)
  end))

  it("drain raises a ConnectionError after the child exited; communicate ignores it", async(function()
    local p = exec("true", { stdin = PIPE })
    p:wait()
    p.stdin:write("x") -- stdin closed at the exit: dropped (BrokenPipe or ConnectionReset in asyncio)
    raises(aio.ConnectionError, p.stdin.drain, p.stdin)
    local q = exec("true", { stdin = PIPE, stdout = PIPE })
    local out = q:communicate(string.rep("y", 1 << 20))
    assert.equal("", out)
    assert.equal(0, q.returncode)
  end))

  it("moves 1 MB through stdin and out of stdout at once with no deadlock", async(function()
    local data = {}
    for i = 1, 1 << 14 do data[i] = ("%063d\n"):format(i) end
    data = table.concat(data)
    assert.equal(1 << 20, #data)
    local p = exec("cat", { stdin = PIPE, stdout = PIPE })
    assert.equal(data, (p:communicate(data)))
    local q = exec("cat", { stdin = PIPE, stdout = PIPE })
    local writer = aio.create_task(function()
      q.stdin:write(data)
      q.stdin:drain()
      q.stdin:close()
    end)
    assert.equal(data, q.stdout:read())
    aio.await(writer)
    assert.equal(0, q:wait())
  end))

  it("pauses a child flooding stdout at the reader's limit", async(function()
    local limit = 4096
    local p = exec("cat", "/dev/zero", { stdout = PIPE, limit = limit })
    local buf = p.stdout._buffer
    while buf:buffered() <= limit do aio.sleep(0.001) end
    for _ = 1, 20 do aio.sleep(0.001) end -- the child keeps writing; we do not read
    assert.is_true(buf:buffered() <= limit + 65536) -- at most one read past the limit
    assert.equal(limit, #p.stdout:readexactly(limit)) -- reading resumes
    p:kill()
    assert.equal(-9, p:wait())
  end))

  it("wait() can be cancelled; the child keeps running and can be waited again", async(function()
    local p = exec("sleep", "30")
    local t = aio.create_task(p.wait, p)
    H.settle()
    t:cancel()
    H.assert_cancelled(t)
    assert.is_nil(p.returncode)
    p:kill()
    assert.equal(-9, p:wait())
  end))

  it("closing a Process kills a live child", async(function()
    local p
    do
      local q <close> = exec("sleep", "30", { stdout = PIPE })
      p = q
    end
    assert.equal(-9, p.returncode)
  end))

  it("closing a finished Process leaves its returncode", async(function()
    local p
    do
      local q <close> = exec("sh", "-c", "exit 4")
      q:wait()
      p = q
    end
    assert.equal(4, p.returncode)
  end))

  it("runs 200 children at once", async(function()
    local tasks = {}
    for i = 1, 200 do
      tasks[i] = aio.create_task(function()
        local p = exec("echo", i, { stdout = PIPE })
        local out = p.stdout:read()
        return tonumber(out) * 1000 + p:wait()
      end)
    end
    local res = aio.gather(tasks)
    for i = 1, 200 do assert.equal(i * 1000, res[i]) end
  end, { timeout = 30 }))

  it("create_subprocess_exec outside a task says how to fix it", function()
    raises_msg("not inside a task", exec, "true")
  end)
end)

describe("loop:subprocess_exec", function()
  local function recorder(log)
    return function()
      return {
        connection_made = function(_, tr) log[#log + 1] = "made " .. tostring(tr:get_pid() > 0) end,
        pipe_data_received = function(_, fd, data) log[#log + 1] = "data " .. fd .. " " .. data end,
        pipe_connection_lost = function(_, fd, exc) log[#log + 1] = "lost " .. fd .. " " .. tostring(exc) end,
        process_exited = function() log[#log + 1] = "exited" end,
        connection_lost = function(_, exc) log[#log + 1] = "closed " .. tostring(exc) end,
      }
    end
  end

  it("calls the protocol: made, data, pipe lost, then connection_lost after the exit", async(function(loop)
    local log = {}
    local tr = loop:subprocess_exec(recorder(log), "printf", "hi", { stdout = PIPE })
    assert.equal(tr, tr:get_pipe_transport(1):get_extra_info("pipe") and tr)
    assert.is_nil(tr:get_pipe_transport(0))
    assert.equal(0, tr:_wait())
    while log[#log] ~= "closed nil" do aio.sleep(0.001) end
    assert.same("made true", log[1])
    assert.same("data 1 hi", log[2])
    local rest = { log[3], log[4] }
    table.sort(rest)
    assert.same({ "exited", "lost 1 nil" }, rest)
    assert.equal(5, #log)
    assert.equal(0, tr:get_returncode())
  end))

  it("subprocess_shell: kill, returncode and an idempotent close", async(function(loop)
    local log = {}
    local tr, proto = loop:subprocess_shell(recorder(log), "sleep 30")
    assert.equal(proto, tr:get_protocol())
    assert.is_nil(tr:get_returncode())
    tr:kill()
    assert.equal(-9, tr:_wait())
    tr:close()
    tr:close()
    assert.is_true(tr:is_closing())
    while log[#log] ~= "closed nil" do aio.sleep(0.001) end
    assert.same({ "made true", "exited", "closed nil" }, log)
  end))

  it("500 children exiting at once plus 100 failing spawns: each exit reported once, no zombie", async(function(loop)
    local before = H.fd_count()
    local a, b = aio.socket.socketpair()
    b:setblocking(true) -- the children's stdin (the flag is shared with them)
    local exits, failures, trs = {}, 0, {}
    local function factory()
      local proto = {}
      function proto.process_exited() exits[proto] = (exits[proto] or 0) + 1 end
      return proto
    end
    for i = 1, 500 do
      trs[i] = loop:subprocess_exec(factory, "cat", { stdin = b, stdout = DEVNULL })
      if i % 5 == 0 then
        local ok, err = pcall(loop.subprocess_exec, loop, factory, "aloop-no-such-program")
        assert.is_false(ok)
        assert.equal(2, err.errno)
        failures = failures + 1
      end
    end
    b:close()
    a:close() -- every cat sees EOF at once and exits
    for i = 1, 500 do assert.equal(0, trs[i]:_wait()) end
    H.settle()
    local n = 0
    for _, count in pairs(exits) do
      assert.equal(1, count)
      n = n + 1
    end
    assert.equal(500, n)
    assert.equal(100, failures)
    assert.is_nil(core._zombies())
    assert.equal(before, H.fd_count())
  end, { timeout = 60 }))
end)
