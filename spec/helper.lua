-- Shared spec helpers: run a body as a task on a fresh loop with a timeout (aloop.busted),
-- and run the built `aloop` binary as a child process.
-- Use: local H = require "spec.helper"
local aio = require "aloop"

local H = {}

H.root = (debug.getinfo(1, "S").source:match("^@(.*)/spec/helper%.lua$") or ".")
H.bin = os.getenv("ALOOP_BIN") or (H.root .. "/build/aloop")
H.build = os.getenv("ALOOP_BUILD") or (H.root .. "/build")

-- H.run(fn, ...): fn(loop, ...) as a task on a fresh loop (aloop.busted's run) with a timeout;
-- returns fn's results. Fails if the body fails, times out or leaves tasks behind; always closes
-- the loop. Lenient about reports (kept in H.reported) and leftover timers: see H.async.
local ab = require "aloop.busted"
function H.run(fn, ...)
  local res = table.pack(ab.run(fn, { allow_reports = true, allow_pending = true }, ...))
  H.reported = ab.reports
  return table.unpack(res, 1, res.n)
end

-- H.async(fn [, opts]): for it("...", H.async(function(loop) ... end)): aloop.busted's async,
-- which also fails when the body leaves timers or watchers scheduled or an error went
-- unretrieved (opts.allow_reports, opts.allow_pending, opts.timeout relax it).
H.async = ab.async

-- H.sh(cmd): runs a shell command, returns its output (stdout+stderr) and exit code.
function H.sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"__EXIT:$?\"")
  local out = p:read("a")
  p:close()
  local body, code = out:match("^(.*)__EXIT:(%d+)%s*$")
  return body, tonumber(code)
end

-- H.aloop(args): runs the aloop binary with a shell-quoted argument string.
function H.aloop(args) return H.sh(H.bin .. " " .. args) end

-- Number of open fds of this process (for leak checks).
function H.fd_count()
  local n = 0
  local p = io.popen("ls /proc/" .. H.pid() .. "/fd")
  for _ in p:lines() do n = n + 1 end
  p:close()
  return n - 1 -- the listing's own pipe
end

function H.pid()
  local f = io.open("/proc/self/stat")
  local s = f:read("l")
  f:close()
  -- /proc/self of the reading process is us (io.open runs in-process)
  return s:match("^(%d+)")
end

-- H.q(s): s quoted for the shell.
function H.q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- H.tmpfile(content): writes content to a new temporary file and returns its path.
function H.tmpfile(content)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(content or "")
  f:close()
  return path
end

-- H.capture(cmd [, input]): runs a shell command (with `input` as its stdin when given,
-- otherwise /dev/null) and returns stdout, stderr and the exit code, kept apart.
-- The shell's own stderr goes to /dev/null: dash reports a child killed by a signal ("User
-- defined signal 1") on it, not on the child's stderr, and only when it runs the next command.
function H.capture(cmd, input)
  local errf = os.tmpname()
  local inf = input and H.tmpfile(input) or "/dev/null"
  local p = io.popen("{ (" .. cmd .. ") <" .. inf .. " 2>" .. errf .. "; echo \"__EXIT:$?\"; } 2>/dev/null")
  local out = p:read("a")
  p:close()
  local f = io.open(errf, "rb")
  local err = f and f:read("a") or ""
  if f then f:close() end
  os.remove(errf)
  if input then os.remove(inf) end
  local body, code = out:match("^(.*)__EXIT:(%d+)%s*$")
  return body, err, tonumber(code)
end

-- H.aloop_capture(args [, input]): the aloop binary with a shell-quoted argument string;
-- returns stdout, stderr and the exit code.
function H.aloop_capture(args, input) return H.capture(H.bin .. " " .. args, input) end

-- H.aloop_script(src, args [, input]): runs Lua source `src` as a script file with the aloop
-- binary (args: a shell-quoted string put after the script); returns stdout, stderr, exit code.
function H.aloop_script(src, args, input)
  local path = H.tmpfile(src)
  local out, err, code = H.aloop_capture(H.q(path) .. " " .. (args or ""), input)
  os.remove(path)
  return out, err, code
end

-- H.settle(): inside a task, lets every ready task run until it blocks (the tasks made before
-- the call run first). A few sleep(0)s: no timing involved.
function H.settle()
  local aio = require "aloop"
  for _ = 1, 5 do aio.sleep(0) end
end

-- H.assert_cancelled(task): awaiting the task raises CancelledError and it ended cancelled.
function H.assert_cancelled(t)
  local aio, assert = require "aloop", require "luassert"
  local ok, err = pcall(aio.await, t)
  assert.is_false(ok)
  assert.is_true(aio.iserror(err, aio.CancelledError), tostring(err))
  assert.is_true(t:cancelled())
end

-- H.raises_text(text, fn, ...): pcall(fn, ...) fails with an error whose string holds `text`
-- (plain text, not a pattern).
function H.raises_text(text, fn, ...)
  local assert = require "luassert"
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  assert.is_truthy(tostring(err):find(text, 1, true), tostring(err))
end

-- H.with_loop(fn): fn(loop) on a fresh loop, which is stopped and closed afterwards whatever
-- fn did; fn's error is re-raised.
function H.with_loop(fn)
  local loop = aio.new_event_loop()
  local ok, err = pcall(fn, loop)
  aio.set_event_loop(nil)
  if loop:is_running() then loop:stop() end
  pcall(loop.close, loop)
  if not ok then error(err, 0) end
end

-- H.run_once(loop): runs the loop until everything queued so far has had one more turn.
function H.run_once(loop)
  loop:call_soon(loop.stop, loop)
  loop:run_forever()
end

-- H.recording(loop): the loop's exception handler now appends each context to the returned list.
function H.recording(loop)
  local got = {}
  loop:set_exception_handler(function(l, ctx)
    assert(rawequal(l, loop), "handler called with another loop")
    got[#got + 1] = ctx
  end)
  return got
end

-- H.capture_log(fn): runs fn(records) with an aio.log sink collecting {level=, msg=} records;
-- restores the sink and level; returns the records.
function H.capture_log(fn)
  local records = {}
  local old_sink, old_level = aio.log.get_sink(), aio.log.get_level()
  aio.log.set_sink(function(level, msg) records[#records + 1] = { level = level, msg = msg } end)
  local ok, err = pcall(fn, records)
  aio.log.set_sink(old_sink)
  aio.log.set_level(old_level)
  if not ok then error(err, 0) end
  return records
end

-- H.busy(seconds): keeps the CPU busy that long (so at least that long on the wall clock).
function H.busy(seconds)
  local t = os.clock()
  while os.clock() - t < seconds do end
end

return H
