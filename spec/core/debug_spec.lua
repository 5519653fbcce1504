-- Debug mode and diagnostics: the logger (aio.log), "coroutine ... was never awaited", slow
-- callbacks, creation tracebacks, pending tasks at close, unclosed loops, the wrong-thread check.
local aio = require "aloop"
local H = require "spec.helper"

local capture = H.capture_log

local function find(records, pattern)
  for _, r in ipairs(records) do
    if r.msg:find(pattern) then return r end
  end
end

-- A fresh loop in debug mode (or not) for fn(loop); always closed.
local function with_loop(debug, fn)
  local loop = aio.new_event_loop()
  loop:set_debug(debug)
  local ok, err = pcall(fn, loop)
  if not loop:is_closed() then loop:close() end
  if not ok then error(err, 0) end
end

-- Runs src with the interpreter: `env` (e.g. "ALOOP_DEBUG=1") and interpreter options first.
local function run_script(src, options, env)
  local path = H.tmpfile(src)
  local out, err, code = H.capture((env or "") .. " " .. H.q(H.bin) .. " " .. (options or "") .. " " .. H.q(path))
  os.remove(path)
  return out, err, code
end

local busy = H.busy

describe("aio.log", function()
  it("sends messages to the sink with their level, string.format'ed", function()
    local records = capture(function()
      aio.log.warning("%d things %s", 3, "happened")
      aio.log.error("plain")
    end)
    assert.same({ level = "warning", msg = "3 things happened" }, records[1])
    assert.same({ level = "error", msg = "plain" }, records[2])
  end)

  it("drops messages below the level", function()
    local records = capture(function()
      aio.log.set_level("warning")
      aio.log.info("hidden")
      aio.log.debug("hidden too")
      aio.log.warning("shown")
    end)
    assert.equal(1, #records)
    assert.equal("shown", records[1].msg)
  end)

  it("rejects unknown levels and non-function sinks", function()
    assert.has_error(function() aio.log.set_level("loud") end)
    assert.has_error(function() aio.log.log("loud", "x") end)
    assert.has_error(function() aio.log.set_sink(42) end)
  end)

  it("writes to stderr by default, and a failing sink falls back to stderr", function()
    local _, err, code = run_script([[
      local aio = require "aloop"
      aio.log.error("to stderr")
      aio.log.set_sink(function() error("sink broke") end)
      aio.log.warning("after the broken sink")
      print("alive")
    ]])
    assert.equal(0, code, err)
    assert.matches("to stderr", err)
    assert.matches("sink broke", err)
    assert.matches("after the broken sink", err)
  end)

  it("receives the default exception handler's reports", function()
    local records = capture(function()
      with_loop(false, function(loop)
        loop:call_soon(function() error("callback failed") end)
        loop:run_until_complete(aio.sleep, 0)
      end)
    end)
    local r = find(records, "^Exception in callback")
    assert.is_truthy(r)
    assert.equal("error", r.level)
    assert.matches("callback failed", r.msg)
  end)
end)

describe("coroutine objects never awaited", function()
  local work = aio.async(function() return 1 end)

  it("are reported when collected", function()
    local records = capture(function()
      local c = work()
      c = nil
      collectgarbage()
      collectgarbage()
    end)
    local r = find(records, "was never awaited")
    assert.is_truthy(r)
    assert.equal("warning", r.level)
    assert.matches("coroutine object .*debug_spec%.lua", r.msg)
  end)

  it("are not reported once scheduled or awaited", function()
    local records = capture(function()
      with_loop(false, function(loop)
        loop:run_until_complete(function()
          aio.await(work())
          work():await()
          aio.create_task(work()):await()
          aio.gather(work(), work())
        end)
        loop:run_until_complete(work())
      end)
      collectgarbage()
      collectgarbage()
    end)
    assert.is_nil(find(records, "never awaited"))
  end)

  it("show where they were created in debug mode", function()
    local _, err, code = run_script([[
      local aio = require "aloop"
      local work = aio.async(function() end)
      local function make() return work() end
      local c = make()  -- line 4
      c = nil
      collectgarbage()
      collectgarbage()
      print("done")
    ]], nil, "ALOOP_DEBUG=1")
    assert.equal(0, code, err)
    assert.matches("was never awaited", err)
    assert.matches("Coroutine created at", err)
    assert.matches(":4:", err)
  end)
end)

describe("slow callbacks", function()
  it("are logged in debug mode with what ran and how long it took", function()
    local records = capture(function()
      with_loop(true, function(loop)
        loop.slow_callback_duration = 0.02
        local function slow_one() busy(0.05) end
        loop:call_soon(slow_one)
        loop:call_soon(function() end)
        loop:run_until_complete(aio.sleep, 0)
      end)
    end)
    local slow = {}
    for _, r in ipairs(records) do
      if r.msg:find("^Executing") then slow[#slow + 1] = r end
    end
    assert.equal(1, #slow)
    assert.equal("warning", slow[1].level)
    assert.matches("^Executing callback function: .* took 0%.%d%d%d seconds$", slow[1].msg)
  end)

  it("include slow task steps", function()
    local records = capture(function()
      with_loop(true, function(loop)
        loop.slow_callback_duration = 0.02
        loop:run_until_complete(function() busy(0.05) end)
      end)
    end)
    assert.is_truthy(find(records, "^Executing a step of <Task .* took"))
  end)

  it("are not logged outside debug mode", function()
    local records = capture(function()
      with_loop(false, function(loop)
        loop.slow_callback_duration = 0.001
        loop:call_soon(busy, 0.01)
        loop:run_until_complete(aio.sleep, 0)
      end)
    end)
    assert.is_nil(find(records, "^Executing"))
  end)

  it("use slow_callback_duration, 0.1 s by default", function()
    with_loop(false, function(loop)
      assert.equal(0.1, loop.slow_callback_duration)
      loop.slow_callback_duration = 0.5
      assert.equal(0.5, loop.slow_callback_duration)
    end)
  end)
end)

describe("reports", function()
  it("a pending task destroyed at close comes with its stack", function()
    local records = capture(function()
      with_loop(false, function(loop)
        loop:create_task(function() aio.sleep(60) end)
        loop:run_until_complete(aio.sleep, 0)
        loop:close()
      end)
    end)
    local r = find(records, "^Task was destroyed but it is pending!")
    assert.is_truthy(r)
    assert.matches("Stack for <Task pending", r.msg)
    assert.matches("debug_spec%.lua:%d+", r.msg)
    assert.is_nil(r.msg:find("Object created at", 1, true))
  end)

  it("in debug mode, a pending task destroyed at close also shows where it was created", function()
    local records = capture(function()
      with_loop(true, function(loop)
        loop:create_task(function() aio.sleep(60) end)
        loop:run_until_complete(aio.sleep, 0)
        loop:close()
      end)
    end)
    local r = find(records, "^Task was destroyed but it is pending!")
    assert.is_truthy(r)
    assert.matches("Object created at:\nstack traceback:\n%s+[^\n]*debug_spec%.lua", r.msg)
  end)

  it("in debug mode, an exception never retrieved shows where the task was created", function()
    local ctxs = {}
    with_loop(true, function(loop)
      loop:set_exception_handler(function(_, ctx) ctxs[#ctxs + 1] = ctx end)
      loop:create_task(function() error("lost") end)
      loop:run_until_complete(aio.sleep, 0)
      collectgarbage()
      collectgarbage()
    end)
    assert.equal(1, #ctxs)
    assert.equal("Task exception was never retrieved", ctxs[1].message)
    assert.matches("debug_spec%.lua", ctxs[1].source_traceback)
  end)

  it("outside debug mode, no creation traceback is kept", function()
    local ctxs = {}
    with_loop(false, function(loop)
      loop:set_exception_handler(function(_, ctx) ctxs[#ctxs + 1] = ctx end)
      loop:create_task(function() error("lost") end)
      loop:run_until_complete(aio.sleep, 0)
      collectgarbage()
      collectgarbage()
    end)
    assert.equal(1, #ctxs)
    assert.is_nil(ctxs[1].source_traceback)
  end)

  it("an unclosed loop is reported when collected in debug mode", function()
    local records = capture(function()
      local loop = aio.new_event_loop()
      loop:set_debug(true)
      loop = nil
      collectgarbage()
      collectgarbage()
    end)
    local r = find(records, "^unclosed event loop")
    assert.is_truthy(r)
    assert.equal("warning", r.level)
  end)

  it("a closed loop, or one outside debug mode, is not reported", function()
    local records = capture(function()
      local a = aio.new_event_loop()
      a:set_debug(true)
      a:close()
      local b = aio.new_event_loop()
      a, b = nil, nil
      collectgarbage()
      collectgarbage()
    end)
    assert.is_nil(find(records, "unclosed event loop"))
  end)

  it("in debug mode, a server still open when its loop closes is reported, with its origin", function()
    for _, debug in ipairs({ true, false }) do
      local records = capture(function()
        with_loop(debug, function(loop)
          loop:run_until_complete(aio.start_server, function() end, "127.0.0.1", 0)
          loop:close()
        end)
      end)
      local r = find(records, "^unclosed ")
      if debug then
        assert.is_truthy(r)
        assert.equal("warning", r.level)
        assert.matches("close it before its loop%)\nObject created at:\nstack traceback:", r.msg)
      else
        assert.is_nil(r)
      end
    end
  end)

  it("ALOOP_DEBUG=1 and aloop --debug turn debug mode on for new loops", function()
    for _, how in ipairs({ { "", "ALOOP_DEBUG=1" }, { "--debug", nil } }) do
      local out, err, code = run_script([[
        local aio = require "aloop"
        print(aio.new_event_loop():get_debug(), aio.get_event_loop():get_debug())
      ]], how[1], how[2])
      assert.equal(0, code, err)
      assert.equal("true\ttrue\n", out)
    end
    local out = run_script([[print(require("aloop").new_event_loop():get_debug())]])
    assert.equal("false\n", out)
  end)
end)

describe("the wrong-thread check", function()
  it("raises when a loop method is called from another OS thread in debug mode", function()
    local out, code = H.sh(H.q(H.build .. "/spec/debug_wrong_thread"))
    assert.equal(0, code, out)
    assert.matches("debug: aloop: non%-thread%-safe operation invoked on an event loop from another thread", out)
    assert.matches("normal: no error", out)
  end)
end)
