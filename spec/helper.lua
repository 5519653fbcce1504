-- Shared spec helpers: run a body as a task on a fresh loop with a timeout (failing with the
-- task's own error and traceback), and run the built `aloop` binary as a child process.
-- Use: local H = require "spec.helper"
local aio = require "aloop"

local H = {}

H.root = (debug.getinfo(1, "S").source:match("^@(.*)/spec/helper%.lua$") or ".")
H.bin = os.getenv("ALOOP_BIN") or (H.root .. "/build/aloop")
H.build = os.getenv("ALOOP_BUILD") or (H.root .. "/build")

-- H.run(fn, ...): new loop, fn(...) as a task, at most `H.timeout` seconds; returns fn's results.
-- Fails if the body fails, times out, or leaves tasks behind; always closes the loop.
H.timeout = 10
function H.run(fn, ...)
  local loop = aio.new_event_loop()
  aio.set_event_loop(loop)
  local errors = {}
  loop:set_exception_handler(function(_, ctx) errors[#errors + 1] = ctx end)
  local main = loop:create_task(fn, ...)
  local th = loop:call_later(H.timeout, function() main:cancel("spec timeout") end)
  local res = table.pack(pcall(loop.run_until_complete, loop, main))
  th:cancel()
  local left = {}
  for t in pairs(aio.all_tasks(loop)) do left[#left + 1] = tostring(t); t:cancel() end
  if #left > 0 then pcall(loop.run_until_complete, loop, aio.sleep, 0) end
  aio.set_event_loop(nil)
  loop:close()
  if not res[1] then
    local err = res[2]
    local msg = tostring(err)
    if type(err) == "table" and err.traceback then msg = msg .. "\n" .. err.traceback end
    error(msg, 0)
  end
  if #left > 0 then error("spec left tasks running: " .. table.concat(left, ", "), 0) end
  H.reported = errors
  return table.unpack(res, 2, res.n)
end

-- H.async(fn): for it("...", H.async(function() ... end))
function H.async(fn) return function() return H.run(fn) end end

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
function H.capture(cmd, input)
  local errf = os.tmpname()
  local inf = input and H.tmpfile(input) or "/dev/null"
  local p = io.popen("(" .. cmd .. ") <" .. inf .. " 2>" .. errf .. "; echo \"__EXIT:$?\"")
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

return H
