-- Lesson: a job runner builds argv as a table and must be able to stop a whole job. A broken
-- version took create_subprocess_exec("curl", table.unpack(args), opts) as it is written,
-- where Lua keeps only args[1] of an unpack that is not last, silently dropping the rest,
-- and had no way to put the child in its own process group or session, so kill() of
-- shell("sleep 30") killed the shell and orphaned the sleep. Now an argv table is accepted,
-- create_subprocess_exec({"curl", ...}, opts), and start_new_session / process_group (as
-- Python's subprocess) let the caller signal the whole group.
local aio = require "aloop"
local H = require "spec.helper"

local PIPE = aio.subprocess.PIPE

-- Fields 5 (pgrp) and 6 (session) of /proc/PID/stat.
local function pgrp_and_session(pid)
  local f = assert(io.open("/proc/" .. pid .. "/stat"))
  local stat = f:read("l")
  f:close()
  local pgrp, sid = stat:match("^%d+ %b() %S+ %d+ (%d+) (%d+)")
  return tonumber(pgrp), tonumber(sid)
end

describe("regression: subprocess argv tables and process groups", function()
  it("takes an argv table, with or without options", H.async(function()
    local args = { "printf", "%s|", "a b", "c", 3 }
    local p = aio.create_subprocess_exec(args, { stdout = PIPE })
    assert.equal("a b|c|3|", (p:communicate()))
    local q = aio.create_subprocess_exec({ "true" })
    assert.equal(0, q:wait())
    for _, bad in ipairs {
      function() aio.create_subprocess_exec({ "true" }, "x") end,
      function() aio.create_subprocess_exec({ "true" }, {}, {}) end,
      function() aio.create_subprocess_exec({}) end,
      function() aio.create_subprocess_exec({ "true", {} }) end,
      function() aio.create_subprocess_exec("true", { process_group = -2 }) end,
    } do
      local ok, err = pcall(bad)
      assert.is_false(ok)
      assert.matches("aloop.create_subprocess_exec", tostring(err))
    end
  end))

  it("start_new_session puts the child in a session of its own", H.async(function()
    local p = aio.create_subprocess_exec("sleep", "30", { start_new_session = true })
    local pgrp, sid = pgrp_and_session(p.pid)
    assert.equal(p.pid, sid)
    assert.equal(p.pid, pgrp)
    p:kill()
    p:wait()
  end))

  it("process_group = 0 makes a group the whole job can be killed by", H.async(function()
    local p = aio.create_subprocess_shell("sleep 30 & echo $!; wait",
      { stdout = PIPE, process_group = 0 })
    local sleeper = tonumber(p.stdout:readline())
    assert.equal(p.pid, (pgrp_and_session(p.pid)))
    assert.equal(p.pid, (pgrp_and_session(sleeper)))
    local out, code = H.sh("kill -9 -" .. p.pid) -- the group: shell and sleep
    assert.equal(0, code, out)
    assert.equal(-9, p:wait())
    local function sleeper_alive() -- gone, or a zombie waiting for its new parent
      local f = io.open("/proc/" .. sleeper .. "/stat")
      if not f then return false end
      local state = f:read("l"):match("^%d+ %b() (%S)")
      f:close()
      return state ~= "Z"
    end
    for _ = 1, 200 do
      if not sleeper_alive() then break end
      aio.sleep(0.005)
    end
    assert.is_false(sleeper_alive())
  end))
end)
