-- Lesson: a subprocess's pipes must not outlive it. A broken version closed a Process's pipe
-- fds only when the loop closed: after p:communicate() and p:wait() each PIPE'd fd stayed
-- open, so a job runner doing 1,000 sequential create_subprocess_exec("echo", ...) under
-- `ulimit -n 256` failed with EMFILE near the 250th. As asyncio does, a read pipe closes at
-- its EOF (what it holds can still be read) and the stdin pipe closes when the child exits.
local aio = require "aloop"
local H = require "spec.helper"

local PIPE = aio.subprocess.PIPE

-- Pipe fds of this process (other fds come and go with the test runner's own work).
local function pipe_count()
  local p = io.popen("ls -l /proc/" .. H.pid() .. "/fd 2>/dev/null")
  local n = 0
  for line in p:lines() do
    if line:find("pipe:", 1, true) then n = n + 1 end
  end
  p:close()
  return n
end

-- Runs loop iterations (at most 200) until the pipe count is back to n; returns the count.
local function settle(n)
  for _ = 1, 200 do
    if pipe_count() == n then break end
    aio.sleep(0.001)
  end
  return pipe_count()
end

describe("regression: subprocess pipes", function()
  it("are closed once the process was waited for and its output read", H.async(function()
    local before = pipe_count()
    for i = 1, 20 do
      local p = aio.create_subprocess_exec("echo", tostring(i), { stdin = PIPE, stdout = PIPE,
        stderr = PIPE })
      local out, err = p:communicate()
      assert.equal(i .. "\n", out)
      assert.equal("", err)
      assert.equal(0, p:wait())
    end
    assert.equal(before, settle(before))
  end))

  it("close at EOF even when nobody reads; what came stays readable", H.async(function()
    local before = pipe_count()
    local p = aio.create_subprocess_exec("echo", "kept", { stdin = PIPE, stdout = PIPE })
    assert.equal(0, p:wait())
    -- stdout saw EOF and closed, stdin closed at the exit; the output is still in the reader
    assert.equal(before, settle(before))
    assert.equal("kept\n", p.stdout:read())
    assert.is_true(p.stdin:is_closing())
  end))

  it("do not run out of fds over many sequential processes", function()
    local script = H.tmpfile([[
      local aio = require "aloop"
      aio.run(function()
        for i = 1, 100 do
          local p = aio.create_subprocess_exec("echo", tostring(i), { stdout = -1, stdin = -1 })
          assert(p:communicate() == i .. "\n")
          p:wait()
        end
        print("done")
      end)
    ]])
    local out, code = H.sh("ulimit -n 40 && " .. H.bin .. " " .. H.q(script))
    os.remove(script)
    assert.equal(0, code, out)
    assert.equal("done\n", out)
  end)
end)
