-- Lesson: a finished subprocess must hold no fd, under load and whether or not its output was
-- read. The soak test (bench/soak) grew by one pipe fd per round of `cat` via communicate() plus
-- a shell exit while thread pools and cancellation storms ran in the same loop: a version that
-- left a StreamReader's read pipe open after its EOF leaked cat's stdout every round (the load was
-- not needed; only the soak ran long enough to show it). A later version closed read pipes at EOF
-- but a reader nobody consumed stops reading at its limit and never sees that EOF: output only
-- waited for, or a communicate() cancelled part-way, kept the stdout fd until the loop closed.
-- Now the child's exit reads what its pipes hold (past the limit) so they reach EOF and close,
-- and that output stays readable. Each case counts this process's own fds (/proc/self/fd).
local aio = require "aloop"
local H = require "spec.helper"

local PIPE = aio.subprocess.PIPE

-- Runs loop iterations (at most 100; no wall-clock wait) until this process has n open fds
-- again (a closed transport lets go of its fd from the loop's queue); returns the count.
local function settle(n)
  for _ = 1, 100 do
    if H.fd_count() == n then break end
    aio.sleep(0)
  end
  return H.fd_count()
end

describe("regression: a finished subprocess holds no fd", function()
  it("after the soak's rounds, run beside thread-pool jobs and cancellation storms", H.async(function(loop)
    local pool = aio.executor.ThreadPool(2)
    local before = H.fd_count()
    local stop = false
    local function jobs()
      while not stop do
        local futs = {}
        for i = 1, 4 do futs[i] = aio.wrap_future(pool:submit(function(n) return n * 2 end, i)) end
        assert.equal(8, aio.gather(futs)[4])
      end
    end
    local function storms()
      while not stop do
        local sleepers = {}
        for i = 1, 50 do sleepers[i] = loop:create_task(aio.sleep, i % 2 == 0 and 10 or 0) end
        aio.sleep(0)
        for i = 2, 50, 2 do sleepers[i]:cancel() end
        assert.equal(50, aio.gather(sleepers, { return_exceptions = true }).n)
      end
    end
    local load = { loop:create_task(jobs), loop:create_task(storms) }
    for _ = 1, 20 do
      local p = aio.create_subprocess_exec("cat", { stdin = PIPE, stdout = PIPE })
      assert.equal(10000, #p:communicate(("x"):rep(10000)))
      local q = aio.create_subprocess_shell("exit 3")
      assert.equal(3, q:wait())
    end
    stop = true
    aio.gather(load)
    assert.equal(before, settle(before))
    pool:shutdown(true)
  end))

  it("when its output (past the reader's limit) was only waited for; it stays readable", H.async(function()
    local before = H.fd_count()
    local procs = {}
    for i = 1, 10 do
      procs[i] = aio.create_subprocess_exec("head", "-c", "300000", "/dev/zero", { stdout = PIPE })
      assert.equal(0, procs[i]:wait())
    end
    assert.equal(before, settle(before))
    for _, p in ipairs(procs) do assert.equal(300000, #p.stdout:read()) end
  end))

  it("when communicate() was cancelled part-way and the child finished later", H.async(function(loop)
    local before = H.fd_count()
    local procs = {}
    for i = 1, 10 do
      -- reads all its input, then writes 300000 bytes that nobody reads any more
      local p = aio.create_subprocess_shell("cat >/dev/null; head -c 300000 /dev/zero",
        { stdin = PIPE, stdout = PIPE })
      local talk = loop:create_task(p.communicate, p, ("x"):rep(4 << 20)) -- > the pipe's 1 MiB
      aio.sleep(0)
      talk:cancel()
      assert.is_false(pcall(aio.await, talk))
      p.stdin:close() -- what communicate() had buffered still goes, then the EOF
      assert.equal(0, p:wait())
      procs[i] = p
    end
    assert.equal(before, settle(before))
    for _, p in ipairs(procs) do assert.equal(300000, #p.stdout:read()) end
  end))

  it("and a grandchild still writing to its stdout keeps that pipe open, not the loop busy", H.async(function()
    local before = H.fd_count()
    local p = aio.create_subprocess_shell("yes & exit 0", { stdout = PIPE, process_group = 0 })
    assert.equal(0, p:wait()) -- the exit read at most the pipe's capacity of yes's endless output
    assert.is_false(p.stdout:at_eof())
    assert.equal(before + 1, H.fd_count())
    assert.equal(0, select(2, H.sh("kill -9 -" .. p.pid))) -- yes is in the shell's process group
    assert.matches("^y\n", p.stdout:read())
    assert.equal(before, settle(before))
  end))
end)
