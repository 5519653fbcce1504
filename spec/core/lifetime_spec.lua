-- The lifetime checklist: every kind of object aloop hands out, used after its loop was closed
-- and after its loop was collected without close(). Each use must be a clear error (an aloop
-- error object, or a message naming aloop) or a no-op, never a crash. Each object kind runs in
-- a child interpreter (under ASan when the suite does), so a crash fails only its own case.
local H = require "spec.helper"

-- The child's harness: make(loop) builds the objects on a loop (running it as needed) and
-- returns probes, functions that use them; the loop is then closed or dropped and collected,
-- and every probe runs. An unclear error (not aloop's) is printed and fails the child.
local harness = [==[
local mode, make = ...
local function clear(err)
  if aio.iserror(err) then return true end
  local s = tostring(err)
  return s:find("aloop", 1, true) ~= nil
end
local probes
do
  local loop = aio.new_event_loop()
  probes = make(loop)
  if mode == "closed" then loop:close() end
end
collectgarbage(); collectgarbage()
for _ = 1, 20 do aio.new_event_loop():close() end -- reuse what was freed
local bad = 0
for _, name in ipairs(probes) do
  local ok, err = pcall(probes[name])
  if not ok and not clear(err) then
    bad = bad + 1
    io.stderr:write(("%s: unclear error: %s\n"):format(name, tostring(err)))
  end
end
collectgarbage(); collectgarbage()
print(bad == 0 and "ok" or "unclear errors")
]==]

-- Each case: Lua source of make(loop), returning { "name", ..., name = function() ... end }.
local cases = {
  Handle = [[return function(loop)
    local h = loop:call_soon(print)
    local t = loop:call_later(10, print)
    return { "cancel", "cancelled", "tostring", "timer_cancel", "when",
      cancel = function() h:cancel() end, cancelled = function() return h:cancelled() end,
      tostring = function() return tostring(h) .. tostring(t) end,
      timer_cancel = function() t:cancel() end, when = function() return t:when() end }
  end]],
  Future = [[return function(loop)
    local f, g = loop:create_future(), loop:create_future()
    g:set_result(1)
    return { "set_result", "cancel", "add_done_callback", "result", "g_result", "get_loop",
      "exception", "await_outside",
      set_result = function() f:set_result(2) end, cancel = function() f:cancel() end,
      add_done_callback = function() f:add_done_callback(print) end,
      result = function() return f:result() end, g_result = function() return g:result() end,
      get_loop = function() return f:get_loop() end, exception = function() return f:exception() end,
      await_outside = function() return aio.await(g) end }
  end]],
  Task = [[return function(loop)
    local t = loop:create_task(function() aio.sleep(10) end)
    local done = loop:create_task(function() return 1 end)
    loop:run_until_complete(aio.sleep, 0.01)
    return { "cancel", "done", "result", "get_stack", "get_name", "done_result", "add_done_callback",
      cancel = function() return t:cancel() end, done = function() return t:done() end,
      result = function() return t:result() end, get_stack = function() return t:get_stack() end,
      get_name = function() return t:get_name() end, done_result = function() return done:result() end,
      add_done_callback = function() t:add_done_callback(print) end }
  end]],
  Streams = [[return function(loop)
    local server, reader, writer, peer
    loop:run_until_complete(function()
      server = aio.start_server(function(r, w) peer = w end, "127.0.0.1", 0)
      local port = server.sockets[1]:getsockname()[2]
      reader, writer = aio.open_connection("127.0.0.1", port)
      aio.sleep(0.01)
    end)
    local tr = writer.transport
    return { "write", "writelines", "write_eof", "is_closing", "extra", "pause", "resume",
      "abort", "close", "read", "at_eof", "peer_close", "server_close", "is_serving",
      "start_serving", "server_loop",
      write = function() writer:write("x") end, writelines = function() writer:writelines({ "a", "b" }) end,
      write_eof = function() writer:write_eof() end, is_closing = function() return writer:is_closing() end,
      extra = function() return tr:get_extra_info("peername") end,
      pause = function() tr:pause_reading() end, resume = function() tr:resume_reading() end,
      abort = function() tr:abort() end, close = function() writer:close() end,
      read = function() return reader:read(1) end, at_eof = function() return reader:at_eof() end,
      peer_close = function() if peer then peer:close() end end,
      server_close = function() server:close() end, is_serving = function() return server:is_serving() end,
      start_serving = function() server:start_serving() end, server_loop = function() return server:get_loop() end }
  end]],
  Process = [[return function(loop)
    local p = loop:run_until_complete(function()
      return aio.create_subprocess_exec("sleep", "10", { stdin = aio.subprocess.PIPE, stdout = aio.subprocess.PIPE })
    end)
    return { "pid", "send_signal", "terminate", "kill", "returncode", "stdin_write", "stdout_read", "wait",
      pid = function() return p.pid end, send_signal = function() p:send_signal(15) end,
      terminate = function() p:terminate() end, kill = function() p:kill() end,
      returncode = function() return p.returncode end,
      stdin_write = function() p.stdin:write("x") end, stdout_read = function() return p.stdout:read(1) end,
      wait = function() return p:wait() end }
  end]],
  Pools = [[return function(loop)
    local pool = aio.executor.ThreadPool(1)
    local cf = pool:submit(function() return 7 end)
    local wrapped = aio.wrap_future(cf, loop)
    local pending = loop:run_in_executor(nil, function() return 1 end)
    return { "cf_result", "wrapped_done", "wrap_again", "submit", "pending_done", "shutdown",
      cf_result = function() assert(cf:result(10) == 7) end,
      wrapped_done = function() return wrapped:done() end,
      wrap_again = function() return aio.wrap_future(cf, wrapped:get_loop()) end,
      submit = function() assert(pool:submit(function() return 2 end):result(10) == 2) end,
      pending_done = function() return pending:done() end,
      shutdown = function() pool:shutdown(true) end }
  end]],
  Parked = [[return function(loop) -- tasks parked on C waiter lists (no future) when the loop ends
    loop:set_exception_handler(function() end) -- the pending tasks are reported at close
    local reader, q, lock, ev = nil, aio.Queue(), aio.Lock(), aio.Event()
    local tasks = {
      loop:create_task(function() reader = aio.StreamReader() reader:read(10) end),
      loop:create_task(function() q:get() end),
      loop:create_task(function() lock:acquire() aio.sleep(3600) end),
      loop:create_task(function() aio.sleep(0) lock:acquire() end),
      loop:create_task(function() ev:wait() end) }
    loop:run_until_complete(function() aio.sleep(0) aio.sleep(0) end)
    for _, t in ipairs(tasks) do assert(not t:done(), tostring(t)) end
    return { "feed", "put", "release", "set",
      feed = function() reader:feed_data("x") end, put = function() q:put_nowait(1) end,
      release = function() lock:release() end, set = function() ev:set() end }
  end]],
  RemoteLoop = [[return function(loop)
    local remote = aio.thread.start_loop()
    local cf = aio.run_coroutine_threadsafe(function() return 3 end, remote)
    assert(cf:result(10) == 3)
    remote:stop()
    remote:join()
    return { "call_soon", "run_coroutine", "stop", "join",
      call_soon = function() remote:call_soon_threadsafe(print) end,
      run_coroutine = function() return aio.run_coroutine_threadsafe(function() end, remote) end,
      stop = function() remote:stop() end, join = function() remote:join() end }
  end]],
}

describe("object lifetimes", function()
  for _, mode in ipairs { "closed", "collected" } do
    for name, make in pairs(cases) do
      it(("%s used after its loop was %s: a clear error or a no-op"):format(name, mode), function()
        local src = "local aio = require 'aloop'\nlocal make = (function() " .. make .. " end)()\n"
          .. "return (function(...) " .. harness .. " end)(" .. ("%q"):format(mode) .. ", make)"
        local out, err, code = H.aloop_script(src)
        assert.equal(0, code, err)
        assert.equal("ok\n", out, err)
      end)
    end
  end
end)
