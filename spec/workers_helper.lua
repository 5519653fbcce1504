-- Helpers of the `aloop --workers` specs (spec/workers/): a supervisor started from the real
-- binary in its own process group (setsid), its stdout and stderr lines collected as they come,
-- bounded waits for lines, and a check that no process of the group is left at the end.
local aio = require "aloop"
local assert = require "luassert"
local H = require "spec.helper"

local PIPE = aio.subprocess.PIPE
local W = {}
W.WAIT = 15 -- seconds any one expected line may take (ASan builds are slow)
W.TOOL = "env -u LD_PRELOAD " -- system tools run without the ASan preload (pgrep hangs in it)
local WAIT, TOOL = W.WAIT, W.TOOL

local Supervisor = {}
Supervisor.__index = Supervisor

local function collect(sup, stream, into)
  for line in stream:lines() do
    into[#into + 1] = line
    sup.changed:set()
  end
  into.eof = true
  sup.changed:set()
end

-- W.spawn(args...) runs `setsid aloop args...` -> a Supervisor (to-be-closed: kills the group).
function W.spawn(...)
  local args = table.pack("setsid", H.bin, ...)
  args[args.n + 1] = { stdout = PIPE, stderr = PIPE }
  local p = aio.create_subprocess_exec(table.unpack(args, 1, args.n + 1))
  local sup = setmetatable({ p = p, pid = p.pid, out = {}, err = {}, changed = aio.Event() },
    Supervisor)
  sup.readers = { aio.create_task(collect, sup, p.stdout, sup.out),
    aio.create_task(collect, sup, p.stderr, sup.err) }
  return sup
end

function Supervisor:report()
  return "\nstdout:\n" .. table.concat(self.out) .. "stderr:\n" .. table.concat(self.err)
end

-- Waits until pred() holds (each new line re-checks it); fails after WAIT seconds.
function Supervisor:wait_until(pred, what)
  local loop = aio.get_running_loop()
  local deadline = loop:time() + WAIT
  while not pred() do
    local left = deadline - loop:time()
    if left <= 0 then error("timed out waiting for " .. what .. self:report(), 2) end
    self.changed:clear()
    pcall(aio.wait_for, aio.coro(self.changed.wait, self.changed), left)
  end
end

-- The captures of the stdout lines matching pattern.
function Supervisor:lines(pattern)
  local found = {}
  for _, l in ipairs(self.out) do
    local c = table.pack(l:match(pattern))
    if c[1] then found[#found + 1] = c end
  end
  return found
end

function Supervisor:stderr() return table.concat(self.err) end

-- Waits for n "listening" lines; returns the port and the lines ({port, id, count, pid}).
local LISTENING = "^listening\t(%d+)\t(%d+)\t(%d+)\t(%d+)"
function Supervisor:listening(n)
  self:wait_until(function() return #self:lines(LISTENING) >= n end, n .. " listening lines")
  local ls = self:lines(LISTENING)
  return tonumber(ls[1][1]), ls
end

function Supervisor:signal(sig) self.p:send_signal(sig) end

-- Waits (at most timeout seconds, default WAIT) for the supervisor's exit and the end of its
-- output; returns its exit code.
function Supervisor:finish(timeout)
  timeout = timeout or WAIT
  local ok, code = pcall(aio.wait_for, aio.coro(self.p.wait, self.p), timeout)
  if not ok then
    error(("the supervisor did not exit within %g s (%s)%s"):format(timeout, tostring(code),
      self:report()), 2)
  end
  aio.wait_for(aio.coro(aio.gather, table.unpack(self.readers)), timeout)
  return code
end

function W.group_alive(pgid)
  local _, code = H.sh(TOOL .. "pgrep -g " .. pgid)
  return code == 0
end

-- Waits (polling, at most WAIT seconds) until no process of the group is left: orphaned
-- workers close their output before the kernel is done with them.
function W.group_gone(pgid)
  local loop = aio.get_running_loop()
  local deadline = loop:time() + WAIT
  while W.group_alive(pgid) and loop:time() < deadline do aio.sleep(0.05) end
  return not W.group_alive(pgid)
end

-- Kills whatever a failed test left behind.
function Supervisor:__close()
  if W.group_alive(self.pid) then
    os.execute(TOOL .. "kill -9 -- -" .. self.pid .. " 2>/dev/null")
  end
  if self.p.returncode == nil then aio.wait_for(aio.coro(self.p.wait, self.p), WAIT) end
  for _, t in ipairs(self.readers) do t:cancel() end
end

-- Stops the supervisor with SIGTERM; it must exit 0 leaving no process.
function W.stop_cleanly(sup)
  sup:signal("SIGTERM")
  assert.equal(0, sup:finish(), sup:report())
  assert.is_false(W.group_alive(sup.pid))
end

return W
