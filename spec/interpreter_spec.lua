-- The `aloop` interpreter (API.md §10): lua5.4's command line (-v, -e, -l, script args, `-`),
-- --backend and --debug, uncaught errors (message + traceback, exit 1), the REPL whose lines
-- run as tasks on a running loop, and Ctrl+C (SIGINT) as aio.KeyboardInterrupt.
local H = require "spec.helper"

local q = H.q

-- Lua source that prints "ready <pid>" (flushed) once; scripts use it to tell the spec
-- when to send a signal.
local READY = [[
local function ready()
  local f = io.open("/proc/self/stat")
  local pid = f:read("l"):match("^(%d+)")
  f:close()
  io.stdout:write("ready ", pid, "\n")
  io.stdout:flush()
end
]]

-- Runs script `src` with the interpreter, waits for its "ready <pid>" line, sends SIGINT to
-- it, and returns the rest of its output (stdout and stderr) and its exit code. A child that
-- never gets ready or hangs is killed after 10 s (exit code 137), so a failure cannot hang.
local function interrupted(src)
  local path = H.tmpfile(READY .. src)
  local p = io.popen("exec timeout -s KILL 10 " .. H.bin .. " " .. q(path) .. " 2>&1")
  local first = p:read("l")
  local pid = first and first:match("^ready (%d+)$")
  if pid then os.execute("kill -INT " .. pid) end
  local rest = p:read("a")
  local _, _, code = p:close()
  os.remove(path)
  assert(pid, "the child never got ready; it said: " .. tostring(first) .. "\n" .. rest)
  return rest, code
end

describe("the aloop interpreter", function()
  it("-v prints the version", function()
    local out, err, code = H.aloop_capture("-v")
    assert.equal(0, code, err)
    assert.matches("^aloop %d+%.%d+%.%d+ %(Lua 5%.4[%d.]*, libev %d+%.%d+%)\n$", out)
  end)

  it("--version prints the same, with the version the module reports (one source)", function()
    local out, err, code = H.aloop_capture("--version")
    assert.equal(0, code, err)
    assert.equal(H.aloop_capture("-v"), out)
    local v = require("aloop").version
    assert.equal("aloop " .. v .. " ", out:sub(1, #v + 7))
  end)

  it("-e runs a statement with aloop available through require", function()
    local out, err, code = H.aloop_capture([[-e 'print(1 + 1)' -e 'print(type(require("aloop").sleep))']])
    assert.equal(0, code, err)
    assert.equal("2\nfunction\n", out)
  end)

  it("-e can run a loop to completion", function()
    local out, err, code = H.aloop_capture([[-e 'local aio = require "aloop"
      print(aio.run(function() return aio.sleep(0.001, "slept") end))']])
    assert.equal(0, code, err)
    assert.equal("slept\n", out)
  end)

  it("-l requires a module into a global, in order with -e", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. q(dir))
    local f = assert(io.open(dir .. "/spec_mod.lua", "w"))
    f:write('print("loading spec_mod") return { value = 42 }')
    f:close()
    local out, err, code = H.capture("LUA_PATH=" .. q(dir .. "/?.lua;;") .. " " .. H.bin
      .. [[ -e 'print("first")' -l spec_mod -e 'print(spec_mod.value)' -laloop -e 'print(type(aloop.run))']])
    os.execute("rm -rf " .. q(dir))
    assert.equal(0, code, err)
    assert.equal("first\nloading spec_mod\n42\nfunction\n", out)
  end)

  it("a script gets its arguments in `arg` and in `...`", function()
    local path = H.tmpfile([[
      print(select("#", ...), ...)
      print(#arg, arg[1], arg[2], arg[3])
      print(arg[0] == SCRIPT_PATH_PLACEHOLDER)
      print(arg[-1] ~= nil)
    ]])
    local src = io.open(path):read("a"):gsub("SCRIPT_PATH_PLACEHOLDER", string.format("%q", path))
    local f = io.open(path, "w"); f:write(src); f:close()
    local out, err, code = H.aloop_capture(q(path) .. " one 'two words' ''")
    os.remove(path)
    assert.equal(0, code, err)
    assert.equal("3\tone\ttwo words\t\n3\tone\ttwo words\t\ntrue\ntrue\n", out)
  end)

  it("options before the script apply; arguments after it belong to the script", function()
    local path = H.tmpfile("print(RAN_E, ...)")
    local out, err, code = H.aloop_capture([[-e 'RAN_E = "yes"' ]] .. q(path) .. " -v -e x")
    os.remove(path)
    assert.equal(0, code, err)
    assert.equal("yes\t-v\t-e\tx\n", out)
  end)

  it("-- ends the options", function()
    local path = H.tmpfile("print(...)")
    local out, err, code = H.aloop_capture("-- " .. q(path) .. " -x")
    os.remove(path)
    assert.equal(0, code, err)
    assert.equal("-x\n", out)
  end)

  it("`-` runs the script from stdin, with arguments", function()
    local out, err, code = H.aloop_capture("- a b", 'print("from stdin", ...)\n')
    assert.equal(0, code, err)
    assert.equal("from stdin\ta\tb\n", out)
  end)

  it("with no arguments and stdin not a terminal, runs stdin as the script", function()
    local out, err, code = H.aloop_capture("", 'local aio = require "aloop"\nprint(aio.run(function() return "ran" end))\n')
    assert.equal(0, code, err)
    assert.equal("ran\n", out)
  end)

  it("os.exit's code is the interpreter's exit code", function()
    local _, _, code = H.aloop_capture("-e 'os.exit(3)'")
    assert.equal(3, code)
  end)

  it("runs Lua's generational garbage collector", function()
    local out, err, code = H.aloop_capture([[-e 'print(collectgarbage("incremental"))']])
    assert.equal(0, code, err)
    assert.equal("generational\n", out)
  end)

  it("--backend NAME selects the libev backend of new loops", function()
    for _, name in ipairs { "poll", "select" } do
      local out, err, code = H.aloop_capture("--backend " .. name .. [[ -e 'local aio = require "aloop"
        print(aio.new_event_loop():backend(), aio.get_event_loop():backend())
        print(aio.run(function() return aio.sleep(0.001, "ok") end))']])
      assert.equal(0, code, err)
      assert.equal(name .. "\t" .. name .. "\nok\n", out)
    end
  end)

  it("--backend with an unknown name fails clearly", function()
    local _, err, code = H.aloop_capture([[--backend nosuch -e 'require("aloop").new_event_loop()']])
    assert.equal(1, code)
    assert.matches("unknown backend 'nosuch'", err)
  end)

  it("--debug turns debug mode on", function()
    local out, err, code = H.aloop_capture([[--debug -e 'print(require("aloop").new_event_loop():get_debug())']])
    assert.equal(0, code, err)
    assert.equal("true\n", out)
    out = H.aloop_capture([[-e 'print(require("aloop").new_event_loop():get_debug())']])
    assert.equal("false\n", out)
  end)

  it("an unknown option fails with the usage", function()
    local out, err, code = H.aloop_capture("--frobnicate")
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("unrecognized option '%-%-frobnicate'", err)
    assert.matches("usage:", err)
  end)

  it("an option missing its argument fails with the usage", function()
    for _, opt in ipairs { "-e", "-l", "--backend" } do
      local _, err, code = H.aloop_capture(opt)
      assert.equal(1, code, opt)
      assert.matches("usage:", err, 1, false, opt)
    end
  end)

  it("a script that cannot be opened fails", function()
    local _, err, code = H.aloop_capture("/nonexistent/script.lua")
    assert.equal(1, code)
    assert.matches("cannot open", err)
  end)

  it("a syntax error fails with the message", function()
    local _, err, code = H.aloop_script("this is not lua")
    assert.equal(1, code)
    assert.matches("syntax error", err)
  end)
end)

describe("an uncaught error", function()
  it("prints the message and a traceback to stderr and exits 1", function()
    local out, err, code = H.aloop_script([[
      local function inner() error("boom") end
      print("before")
      inner()
      print("not reached")
    ]])
    assert.equal(1, code)
    assert.equal("before\n", out)
    assert.matches(":1: boom", err)
    assert.matches("stack traceback:", err)
    assert.matches("in %a+ 'inner'", err)
  end)

  it("from -e exits 1 with the message", function()
    local out, err, code = H.aloop_capture([[-e 'error("from -e")' -e 'print("not reached")']])
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("from %-e", err)
    assert.matches("stack traceback:", err)
  end)

  it("an aloop error raised in a task through run_until_complete shows the class, message and traceback", function()
    local out, err, code = H.aloop_script([[
      local aio = require "aloop"
      local loop = aio.new_event_loop()
      local function deep()
        aio.sleep(0)
        error(aio.TimeoutError("too late"))
      end
      loop:run_until_complete(function() deep() end)
      print("not reached")
    ]])
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("TimeoutError: too late", err)
    assert.matches("stack traceback:", err)
    assert.matches("in %a+ 'deep'", err) -- where it was raised, inside the task
  end)

  it("a string error raised in a task through aio.run exits 1 with the message", function()
    local _, err, code = H.aloop_script([[
      local aio = require "aloop"
      aio.run(function() aio.sleep(0) error("task went wrong") end)
    ]])
    assert.equal(1, code)
    assert.matches("task went wrong", err)
    assert.matches("stack traceback:", err)
  end)

  it("a non-string error object is described", function()
    local _, err, code = H.aloop_script("error({})")
    assert.equal(1, code)
    assert.matches("error object is a table value", err)
    _, err, code = H.aloop_script("error(setmetatable({}, {__tostring = function() return 'custom object' end}))")
    assert.equal(1, code)
    assert.matches("custom object", err)
  end)
end)

describe("the REPL", function()
  it("runs piped lines in order: statements, globals, prints, top-level suspension", function()
    local out, err, code = H.aloop_capture("-i",
      'x = 1+1\nprint(x)\naio = require "aloop"\nprint(aio.sleep(0.01, "slept"))\nprint("after")\n')
    assert.equal(0, code, err)
    assert.matches("\n?2\n", out)
    assert.matches("slept\n", out)
    assert.matches("after\n", out)
    assert.is_truthy(out:find("2\n.*slept\n.*after\n"))
  end)

  it("shows the value of an expression", function()
    local out, err, code = H.aloop_capture("-i", '1 + 1\n"a", "b"\n')
    assert.equal(0, code, err)
    assert.matches("2\n", out)
    assert.matches("a\tb\n", out)
  end)

  it("runs lines as tasks on a running loop", function()
    local out, err, code = H.aloop_capture("-i",
      'aio = require "aloop"\nprint(aio.current_task() ~= nil, aio.get_running_loop():is_running())\n')
    assert.equal(0, code, err)
    assert.matches("true\ttrue\n", out)
  end)

  it("keeps tasks started on earlier lines running", function()
    local out, err, code = H.aloop_capture("-i",
      'aio = require "aloop"\nt = aio.create_task(function() aio.sleep(0.01) return "bg done" end)\nprint(t:await())\n')
    assert.equal(0, code, err)
    assert.matches("bg done\n", out)
  end)

  it("continues multi-line chunks", function()
    local out, err, code = H.aloop_capture("-i", 'for i = 1, 3 do\nprint("i=" .. i)\nend\n')
    assert.equal(0, code, err)
    assert.matches("i=1\ni=2\ni=3\n", out)
  end)

  it("reports an error in a line and goes on", function()
    local out, err, code = H.aloop_capture("-i", 'error("line failed")\nprint("next line")\n')
    assert.equal(0, code, err)
    assert.matches("line failed", err)
    assert.matches("next line\n", out)
  end)

  it("reports a syntax error and goes on", function()
    local out, err, code = H.aloop_capture("-i", 'x = = 1\nprint("next line")\n')
    assert.equal(0, code, err)
    assert.matches("unexpected symbol", err)
    assert.matches("next line\n", out)
  end)

  it("runs after the script with -i, seeing its globals", function()
    local path = H.tmpfile('greeting = "hello from script"\n')
    local out, err, code = H.aloop_capture("-i " .. q(path), "print(greeting)\n")
    os.remove(path)
    assert.equal(0, code, err)
    assert.matches("hello from script\n", out)
  end)
end)

describe("the REPL on a terminal", function()
  it("edits lines with history (libedit) and shows prompts", function()
    -- (env -u LD_PRELOAD: under the ASan run, python3 itself must not get the sanitizer)
    local out, code = H.sh("env -u LD_PRELOAD python3 " .. H.q(H.root .. "/spec/fixtures/pty_repl.py") .. " " .. H.q(H.bin))
    assert.equal(0, code, out)
    assert.matches("^aloop [%d.]+ %(Lua 5%.4", out)
    assert.matches("> print%(1%+1%)\r\n2\r\n> x = 'second'\r\n", out)
    -- the up arrow brought back "print(1+1)", which ran again
    local after = out:match("x = 'second'\r\n(.*)$")
    assert.matches("print%(1%+1%)[^\n]*\n2\r\n", after)
  end)
end)

describe("SIGINT", function()
  it("while run_forever waits with nothing scheduled raises aio.KeyboardInterrupt so cleanup runs", function()
    local out, code = interrupted([[
      local aio = require "aloop"
      local loop = aio.new_event_loop()
      loop:call_soon(ready)
      local ok, err = pcall(loop.run_forever, loop)
      print("caught", ok, aio.iserror(err, aio.KeyboardInterrupt), tostring(err))
      print("cleanup", loop:is_running())
      loop:close()
    ]])
    assert.equal(0, code, out)
    assert.equal("caught\tfalse\ttrue\tKeyboardInterrupt\ncleanup\tfalse\n", out)
  end)

  it("while run_until_complete waits on a long sleep raises aio.KeyboardInterrupt", function()
    local out, code = interrupted([[
      local aio = require "aloop"
      local loop = aio.new_event_loop()
      local ok, err = pcall(loop.run_until_complete, loop, function()
        ready()
        aio.sleep(60)
      end)
      print("caught", aio.iserror(err, aio.KeyboardInterrupt))
    ]])
    assert.equal(0, code, out)
    assert.matches("^caught\ttrue\n", out)
  end)

  it("interrupts a task running a tight Lua loop; run_until_complete raises KeyboardInterrupt", function()
    local out, code = interrupted([[
      local aio = require "aloop"
      local loop = aio.new_event_loop()
      local ok, err = pcall(loop.run_until_complete, loop, function()
        ready()
        while true do end
      end)
      print("caught", aio.iserror(err, aio.KeyboardInterrupt), tostring(err))
    ]])
    assert.equal(0, code, out)
    assert.matches("^caught\ttrue\tKeyboardInterrupt\n", out)
  end)

  it("stops the loop even when the interrupted code catches the error with pcall", function()
    local out, code = interrupted([[
      local aio = require "aloop"
      local loop = aio.new_event_loop()
      local ok, err = pcall(loop.run_until_complete, loop, function()
        local caught = pcall(function() ready() while true do end end)
        print("inner pcall caught", not caught)
        aio.sleep(60)
      end)
      print("caught", aio.iserror(err, aio.KeyboardInterrupt))
    ]])
    assert.equal(0, code, out)
    assert.matches("^inner pcall caught\ttrue\ncaught\ttrue\n", out)
  end)

  it("interrupts a callback running a tight Lua loop; run_forever raises KeyboardInterrupt", function()
    local out, code = interrupted([[
      local aio = require "aloop"
      local loop = aio.new_event_loop()
      loop:call_soon(function() ready() while true do end end)
      local ok, err = pcall(loop.run_forever, loop)
      print("caught", aio.iserror(err, aio.KeyboardInterrupt))
      -- the loop is usable again afterwards
      print(loop:run_until_complete(function() return aio.sleep(0, "usable") end))
    ]])
    assert.equal(0, code, out)
    assert.matches("^caught\ttrue\nusable\n", out)
  end)

  it("uncaught, ends the script with exit code 1 and a KeyboardInterrupt message", function()
    local out, code = interrupted([[
      local aio = require "aloop"
      aio.run(function() ready() aio.sleep(60) end)
      print("not reached")
    ]])
    assert.equal(1, code, out)
    assert.matches("KeyboardInterrupt", out)
    assert.is_nil(out:find("not reached"))
  end)
end)
