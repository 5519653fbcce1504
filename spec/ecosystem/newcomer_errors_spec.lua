-- Errors a newcomer hits name the fix: a suspending function called outside a task, a server
-- left open at the REPL prompt, a port already in use, a name that does not resolve.
local aio = require "aloop"
local H = require "spec.helper"

local FIX = "not inside a task; use aio.run(main) or loop:run_until_complete(...)"

-- message of the error fn(...) raises (it must raise)
local function message_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return type(err) == "table" and err.message or tostring(err)
end

describe("a suspending function outside a task", function()
  local loop
  before_each(function()
    loop = aio.new_event_loop()
    aio.set_event_loop(loop) -- the futures below belong to the loop the calls would use
  end)
  after_each(function()
    aio.set_event_loop(nil)
    loop:close()
  end)

  local cases = {
    { "sleep", function() aio.sleep(1) end },
    { "sleep", function() aio.sleep(0) end },
    { "await", function() aio.await(loop:create_future()) end },
    { "wait", function() aio.wait({ loop:create_future() }) end },
    { "wait_for", function() aio.wait_for(loop:create_future(), 1) end },
    { "as_completed", function() for _ in aio.as_completed({ loop:create_future() }) do end end },
    { "timeout", function() aio.timeout(1) end },
    { "TaskGroup", function() aio.TaskGroup() end },
    { "Lock.acquire", function() local l = aio.Lock(); l:acquire(); l:acquire() end },
    { "Event.wait", function() aio.Event():wait() end },
    { "Condition.wait", function() aio.Condition():wait() end },
    { "Semaphore.acquire", function() aio.Semaphore(0):acquire() end },
    { "Barrier.wait", function() aio.Barrier(2):wait() end },
    { "Queue.get", function() aio.Queue():get() end },
    { "Queue.put", function() local q = aio.Queue(1); q:put(1); q:put(2) end },
    { "open_connection", function() aio.open_connection("127.0.0.1", 9) end },
    { "start_server", function() aio.start_server(print, "127.0.0.1", 0) end },
    { "open_unix_connection", function() aio.open_unix_connection("/nonexistent") end },
    { "create_connection", function() loop:create_connection(function() return {} end, "127.0.0.1", 9) end },
    { "create_unix_connection", function() loop:create_unix_connection(function() return {} end, "/nonexistent") end },
    { "sock_recv", function()
        local a, b = aio.socket.socketpair()
        local ok, err = pcall(loop.sock_recv, loop, a, 1)
        a:close(); b:close()
        error(err, 0)
      end },
    { "create_subprocess_exec", function() aio.create_subprocess_exec("true") end },
    { "create_subprocess_shell", function() aio.create_subprocess_shell("true") end },
  }
  for _, case in ipairs(cases) do
    it(case[1] .. " says how to get into a task", function()
      local msg = message_of(case[2])
      assert.is_truthy(msg:find("aloop." .. case[1] .. ": " .. FIX, 1, true), msg)
    end)
  end

  it("stream, server and process methods name themselves; a failed read leaves the reader usable", function()
    local server = loop:run_until_complete(aio.start_server, function(_, w)
      aio.sleep(0.05)
      w:write("late\n")
      w:close()
    end, "127.0.0.1", 0)
    local reader, writer = loop:run_until_complete(aio.open_connection, "127.0.0.1",
      server.sockets[1]:getsockname()[2])
    local proc = loop:run_until_complete(aio.create_subprocess_exec, "sleep", "5")
    for _, case in ipairs({
      { "StreamReader.read", reader.read, reader, 10 },
      { "StreamReader.readline", reader.readline, reader },
      { "StreamReader.readexactly", reader.readexactly, reader, 2 },
      { "StreamReader.readuntil", reader.readuntil, reader, "x" },
      { "StreamWriter.wait_closed", writer.wait_closed, writer },
      { "Server.wait_closed", server.wait_closed, server },
      { "Server.serve_forever", server.serve_forever, server },
      { "Process.wait", proc.wait, proc },
      { "Process.communicate", proc.communicate, proc },
      { "getaddrinfo", loop.getaddrinfo, loop, "example.invalid", 80 },
      { "Condition.wait_for", aio.Condition().wait_for, aio.Condition(), function() end },
    }) do
      local msg = message_of(table.unpack(case, 2))
      assert.is_truthy(msg:find("aloop." .. case[1] .. ": " .. FIX, 1, true), msg)
    end
    assert.is_true(server:is_serving()) -- serve_forever outside a task did not close it
    assert.equal("late\n", loop:run_until_complete(reader.readline, reader))
    proc:kill()
    loop:run_until_complete(proc.wait, proc)
    writer:close()
    server:close()
    loop:run_until_complete(server.wait_closed, server)
  end)

  it("the same message in a script run by the interpreter, with exit 1", function()
    local out, err, code = H.aloop_script('local aio = require "aloop"\naio.sleep(1)\n')
    assert.equal(1, code, out .. err)
    assert.matches("aloop.sleep: " .. FIX:gsub("%p", "%%%0"), err)
  end)
end)

describe("a server left open at the REPL prompt", function()
  it("is announced when its line ends and closed, with a note, when the REPL ends", function()
    local out, err, code = H.aloop_capture("-i",
      's = aio.start_server(print, "127.0.0.1", 0)\nprint("next line")\n'
      .. 't = aio.start_server(print, "127.0.0.1", 0); t:close()\n')
    assert.equal(0, code, err)
    assert.matches("next line\n", out)
    local listening = "(<aloop%.Server 127%.0%.0%.1:%d+>) is listening until you call :close%(%) on it"
      .. " %(the REPL closes it when it ends%)\n"
    local name = err:match(listening)
    assert.is_truthy(name, err)
    assert.is_truthy(err:find("closing " .. name .. ": still open when the REPL ended\n", 1, true), err)
    local _, n = err:gsub("is listening", "")
    assert.equal(1, n, err) -- the server closed on its own line is not mentioned
  end)

  it("a server closed at the prompt gets no note", function()
    local out, err, code = H.aloop_capture("-i",
      'do local s <close> = aio.start_server(print, "127.0.0.1", 0) end\nprint("ok")\n')
    assert.equal(0, code, err)
    assert.equal("", (err:gsub("^aloop [^\n]*\n", "")), err)
    assert.matches("ok\n", out)
  end)
end)

describe("a port in use", function()
  it("names host:port and the reuse options", H.async(function(loop)
    local first <close> = aio.start_server(print, "127.0.0.1", 0)
    local port = first.sockets[1]:getsockname()[2]
    local ok, err = pcall(aio.start_server, print, "127.0.0.1", port)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.OSError), tostring(err))
    assert.equal(require("aloop.core").errno.EADDRINUSE, err.errno)
    local msg = tostring(err)
    assert.is_truthy(msg:find("127.0.0.1:" .. port, 1, true), msg)
    assert.is_truthy(msg:find("reuse_port", 1, true), msg)
    assert.is_truthy(msg:find("reuse_address", 1, true), msg)
    assert.is_truthy(msg:find("0 picks a free one", 1, true), msg)
    -- the loop goes on: another port works
    local second <close> = aio.start_server(print, "127.0.0.1", 0)
    assert.is_true(second:is_serving())
  end))
end)

describe("a name that does not resolve", function()
  it("names it, from loop:getaddrinfo and from open_connection", H.async(function(loop)
    for _, call in ipairs({
      function() return loop:getaddrinfo("no-such-host.invalid", 80) end,
      function() return aio.open_connection("no-such-host.invalid", 80) end,
    }) do
      local ok, err = pcall(call)
      assert.is_false(ok)
      assert.is_true(aio.iserror(err, aio.OSError), tostring(err))
      assert.is_truthy(tostring(err):find("no-such-host.invalid", 1, true), tostring(err))
    end
  end))
end)
