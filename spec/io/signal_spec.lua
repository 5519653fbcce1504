-- Unix signal handlers: loop:add_signal_handler / remove_signal_handler (src/io/signal.c).
local aio = require "aloop"
local H = require "spec.helper"
local with_loop = H.with_loop

local PID = H.pid()

-- Sends sig to this process from a child (io.popen: unlike os.execute, it does not make the
-- parent ignore SIGINT while the child runs).
local function kill_self(sig)
  local p = assert(io.popen("kill -" .. sig .. " " .. PID))
  p:close()
end

-- Runs a script with the interpreter; a child that hangs is killed after 20 s (exit 137).
local function script(src)
  local path = H.tmpfile(src)
  local out, err, code = H.capture("timeout -s KILL 20 " .. H.q(H.bin) .. " " .. H.q(path))
  os.remove(path)
  return out, err, code
end

describe("add_signal_handler", function()
  it("runs the handler with its arguments as a loop callback on the main Lua thread", function()
    with_loop(function(loop)
      local got
      loop:add_signal_handler("SIGUSR1", function(a, b)
        got = { a, b, select(2, coroutine.running()), aio.current_task() }
        loop:stop()
      end, "x", 2)
      loop:call_soon(kill_self, "USR1")
      loop:run_forever()
      assert.same({ "x", 2, true }, got) -- main thread, and no task
      assert.is_true(loop:remove_signal_handler("SIGUSR1"))
    end)
  end)

  it("calls the handler once per delivery, and a new handler replaces the old one", function()
    with_loop(function(loop)
      local log = {}
      loop:add_signal_handler(aio.signal.SIGUSR2, function() log[#log + 1] = "old" end)
      loop:add_signal_handler("SIGUSR2", function(tag)
        log[#log + 1] = tag
        if #log == 2 then loop:stop() end
      end, "new")
      loop:call_soon(kill_self, "USR2")
      loop:call_later(0.02, kill_self, "USR2")
      loop:run_forever()
      assert.same({ "new", "new" }, log)
      loop:remove_signal_handler("SIGUSR2")
    end)
  end)

  it("reports a handler that raises and keeps the loop running", function()
    with_loop(function(loop)
      local ctxs = {}
      loop:set_exception_handler(function(_, ctx) ctxs[#ctxs + 1] = ctx end)
      loop:add_signal_handler("SIGUSR1", function() error("handler failed") end)
      loop:call_soon(kill_self, "USR1")
      loop:call_later(0.05, loop.stop, loop)
      loop:run_forever()
      loop:remove_signal_handler("SIGUSR1")
      assert.equal(1, #ctxs)
      assert.matches("^Exception in callback", ctxs[1].message)
      assert.matches("handler failed", ctxs[1].exception)
    end)
  end)

  it("takes names and numbers, and rejects what does not exist or cannot be caught", function()
    with_loop(function(loop)
      assert.equal(15, aio.signal.SIGTERM)
      assert.has_error(function() loop:add_signal_handler("SIGNOPE", print) end,
        "aloop: unknown signal 'SIGNOPE' (names are like \"SIGTERM\")")
      assert.has_error(function() loop:add_signal_handler(0, print) end, "aloop: invalid signal number 0")
      assert.has_error(function() loop:add_signal_handler(100000, print) end)
      assert.has_error(function() loop:add_signal_handler({}, print) end)
      assert.has_error(function() loop:add_signal_handler("SIGKILL", print) end, "aloop: signal 9 cannot be caught")
      assert.has_error(function() loop:add_signal_handler("SIGSTOP", print) end)
      assert.has_error(function() loop:add_signal_handler("SIGCHLD", print) end,
        "aloop: SIGCHLD is reserved for subprocess reaping")
      assert.has_error(function() loop:add_signal_handler("SIGUSR1") end)
    end)
  end)

  it("lets one loop own a signal at a time", function()
    with_loop(function(a)
      with_loop(function(b)
        a:add_signal_handler("SIGUSR1", print)
        assert.has_error(function() b:add_signal_handler("SIGUSR1", print) end,
          "aloop: signal 10 is already handled by another event loop")
        a:remove_signal_handler("SIGUSR1")
        b:add_signal_handler("SIGUSR1", print)
        assert.is_true(b:remove_signal_handler("SIGUSR1"))
      end)
    end)
  end)

  it("closing the loop removes its handlers (another loop can take the signal)", function()
    local a = aio.new_event_loop()
    a:add_signal_handler("SIGUSR1", print)
    a:close()
    with_loop(function(b)
      b:add_signal_handler("SIGUSR1", print)
      b:remove_signal_handler("SIGUSR1")
    end)
  end)

  it("on a closed loop is an error", function()
    local loop = aio.new_event_loop()
    loop:close()
    assert.has_error(function() loop:add_signal_handler("SIGUSR1", print) end, "aloop: Event loop is closed")
    assert.is_false(loop:remove_signal_handler("SIGUSR1"))
  end)
end)

describe("remove_signal_handler", function()
  it("returns whether there was a handler", function()
    with_loop(function(loop)
      assert.is_false(loop:remove_signal_handler("SIGUSR1"))
      loop:add_signal_handler("SIGUSR1", print)
      assert.is_true(loop:remove_signal_handler("SIGUSR1"))
      assert.is_false(loop:remove_signal_handler("SIGUSR1"))
    end)
  end)

  it("restores the default disposition (SIGUSR1 then ends the process)", function()
    local out, err, code = script([[
      local aio = require "aloop"
      local pid = io.open("/proc/self/stat"):read("l"):match("^%d+")
      local loop = aio.new_event_loop()
      loop:add_signal_handler("SIGUSR1", print)
      loop:remove_signal_handler("SIGUSR1")
      io.popen("kill -USR1 " .. pid):close()
      loop:run_until_complete(aio.sleep, 1)
      print("survived")
    ]])
    assert.equal(128 + 10, code, out .. err)
    assert.is_nil(out:find("survived"))
  end)
end)

describe("SIGINT", function()
  it("with a handler, runs it instead of raising KeyboardInterrupt; removed, Ctrl+C raises again", function()
    local out, err, code = script([[
      local aio = require "aloop"
      local pid = io.open("/proc/self/stat"):read("l"):match("^%d+")
      local function ctrl_c() io.popen("kill -INT " .. pid):close() end
      local loop = aio.new_event_loop()
      loop:add_signal_handler("SIGINT", function() print("handled") loop:stop() end)
      loop:call_soon(ctrl_c)
      loop:run_forever()
      print("still running")
      loop:remove_signal_handler("SIGINT")
      loop:call_soon(ctrl_c)
      local ok, e = pcall(loop.run_forever, loop)
      print("raised", aio.iserror(e, aio.KeyboardInterrupt))
    ]])
    assert.equal(0, code, err)
    assert.equal("handled\nstill running\nraised\ttrue\n", out)
  end)

  it("can be handled while the loop runs (added from a callback)", function()
    local out, err, code = script([[
      local aio = require "aloop"
      local pid = io.open("/proc/self/stat"):read("l"):match("^%d+")
      local loop = aio.new_event_loop()
      loop:call_soon(function()
        loop:add_signal_handler("SIGINT", function() print("handled") loop:stop() end)
        io.popen("kill -INT " .. pid):close()
      end)
      loop:run_forever()
      loop:close()
      print("done")
    ]])
    assert.equal(0, code, err)
    assert.equal("handled\ndone\n", out)
  end)
end)
