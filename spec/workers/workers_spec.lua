-- `aloop --workers N` (src/supervisor.c, src/workers/worker.c, lua/aloop/workers/worker.lua):
-- the real binary runs spec/fixtures/worker_server.lua under a supervisor in its own process
-- group; the spec reads the workers' lines ("listening PORT ID COUNT PID", "exit ID PID") and
-- the supervisor's messages as they come, with a bounded wait each, talks to the shared port
-- on 127.0.0.1 and checks that no process of the group is left at the end.
local aio = require "aloop"
local H = require "spec.helper"
local W = require "spec.workers_helper"

local async = H.async
local fixture = H.root .. "/spec/fixtures/worker_server.lua"
local WAIT, TOOL, group_alive, group_gone = W.WAIT, W.TOOL, W.group_alive, W.group_gone

-- start(nworkers, mode [, {grace=, script=, path=}]) -> a Supervisor (to-be-closed: kills the
-- group); path: the workers serve that Unix socket instead of a port.
local function start(nworkers, mode, opts)
  opts = opts or {}
  local args = { "--workers", tostring(nworkers), "--grace", tostring(opts.grace or 5),
    opts.script or fixture, mode or "serve", opts.path }
  return W.spawn(table.unpack(args))
end

-- Sends a line to the shared port (or Unix socket path); returns the answering worker's id
-- and pid.
local function ask(port, line)
  local reader, writer
  if type(port) == "string" then
    reader, writer = aio.open_unix_connection(port)
  else
    reader, writer = aio.open_connection("127.0.0.1", port)
  end
  writer:write(line or "hi\n")
  local answer = reader:readline()
  writer:close()
  local id, pid = answer:match("^(%d+) (%d+)\n$")
  assert(id, "bad answer: " .. answer)
  return tonumber(id), pid
end

local stop_cleanly = W.stop_cleanly

describe("aloop --workers", function()
  it("leaves aio.worker.id nil outside a supervisor", function()
    assert.is_nil(aio.worker.id)
    assert.is_nil(aio.worker.count)
  end)

  it("refuses a bad worker count and a missing script", function()
    local _, err, code = H.aloop_capture("--workers many -e 'print(1)'")
    assert.equal(1, code)
    assert.matches("'%-%-workers' needs a number of workers", err)
    _, err, code = H.aloop_capture("--workers 2 -e 'print(1)'")
    assert.equal(1, code)
    assert.matches("%-%-workers needs a script file", err)
  end)

  it("shares one port among the workers: each one accepts from it", async(function()
    local sup <close> = start(3, "once")
    local port, ls = sup:listening(3)
    for _, l in ipairs(ls) do
      assert.equal(port, tonumber(l[1])) -- port 0 resolved once for every worker
      assert.equal("3", l[3])
    end
    -- Each worker answers one connection and then stops accepting: three connections in a row
    -- reach three different workers through the one listening socket.
    local ids = {}
    for i = 1, 3 do ids[i] = ask(port) end
    table.sort(ids)
    assert.same({ 1, 2, 3 }, ids)
    stop_cleanly(sup)
  end, { timeout = 60 }))

  it("shares a Unix socket among the workers; its file goes when the supervisor stops",
    async(function()
      local path = os.tmpname()
      os.remove(path)
      local stale = aio.socket.socket("unix") -- a socket file nobody accepts on
      stale:bind(path)
      stale:close()
      local sup <close> = start(2, "once", { path = path })
      sup:listening(2)
      -- Each worker answers one connection, then closes its server: the file stays (it is the
      -- supervisor's), and the next connection reaches the other worker.
      local ids = { (ask(path)), (ask(path)) }
      table.sort(ids)
      assert.same({ 1, 2 }, ids)
      stop_cleanly(sup)
      assert.is_nil(io.open(path))
    end, { timeout = 60 }))

  it("closes a listening socket the reloaded workers no longer ask for", async(function()
    local sock_path = os.tmpname()
    os.remove(sock_path)
    local path = H.tmpfile(("return loadfile(%q)('serve')\n"):format(fixture))
    local sup <close> = start(2, "serve", { script = path })
    local port = sup:listening(2)
    ask(port)
    local f = assert(io.open(path, "w")) -- the new code serves a Unix socket instead
    f:write(("return loadfile(%q)('serve', %q)\n"):format(fixture, sock_path))
    f:close()
    sup:signal("SIGHUP")
    sup:wait_until(function()
      return sup:stderr():find("reload done", 1, true) and #sup:lines("^exit") >= 2
    end, "the reload")
    os.remove(path)
    -- The old workers are gone and the supervisor closed the port: refused, not queued.
    local ok, err = pcall(aio.open_connection, "127.0.0.1", port)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.ConnectionRefusedError), tostring(err))
    ask(sock_path)
    stop_cleanly(sup)
    assert.is_nil(io.open(sock_path))
  end, { timeout = 60 }))

  it("runs one worker per CPU with N = 0", async(function()
    local ncpu = tonumber((H.sh(TOOL .. "nproc")))
    local sup <close> = start(0, "serve")
    local _, ls = sup:listening(ncpu)
    local ids = {}
    for i, l in ipairs(ls) do
      assert.equal(tostring(ncpu), l[3])
      ids[i] = tonumber(l[2])
    end
    table.sort(ids)
    for i = 1, ncpu do assert.equal(i, ids[i]) end
    stop_cleanly(sup)
  end, { timeout = 60 }))

  it("answers a request in flight on SIGTERM, then exits 0 leaving no process", async(function()
    local sup <close> = start(2, "serve")
    local port = sup:listening(2)
    local reader, writer = aio.open_connection("127.0.0.1", port)
    writer:write("slow\n")
    sup:wait_until(function() return #sup:lines("^slow") == 1 end, "the slow request")
    sup:signal("SIGTERM")
    assert.matches("^%d %d+\n$", reader:readline())
    writer:close()
    assert.equal(0, sup:finish(), sup:report())
    assert.equal(2, #sup:lines("^exit"))
    assert.is_false(group_alive(sup.pid))
  end, { timeout = 60 }))

  it("replaces a worker killed with SIGKILL; the service goes on", async(function()
    local sup <close> = start(2, "serve")
    local port, ls = sup:listening(2)
    local victim = ls[1][4]
    os.execute(TOOL .. "kill -9 " .. victim)
    for _ = 1, 5 do ask(port) end -- the other worker answers meanwhile
    local port2, after = sup:listening(3)
    assert.equal(port, port2)
    assert.equal(ls[1][2], after[3][2]) -- the same worker id
    assert.are_not.equal(victim, after[3][4])
    assert.matches("killed by signal 9; restarting", sup:stderr())
    stop_cleanly(sup)
  end, { timeout = 60 }))

  it("restarts the workers one by one on SIGHUP without refusing a connection",
    async(function()
      local sup <close> = start(2, "serve")
      local port, ls = sup:listening(2)
      local old = { [ls[1][4]] = true, [ls[2][4]] = true }
      local answers, failures, reloaded = 0, {}, false
      local client = aio.create_task(function()
        for _ = 1, 20000 do
          local ok, err = pcall(ask, port)
          if ok then answers = answers + 1 else failures[#failures + 1] = tostring(err) end
          if reloaded then return end
        end
      end)
      sup:wait_until(function() return answers >= 3 end, "answers before the reload")
      sup:signal("SIGHUP")
      sup:wait_until(function()
        return sup:stderr():find("reload done", 1, true) and #sup:lines("^exit") >= 2
      end, "the reload")
      reloaded = true
      aio.wait_for(client, WAIT)
      assert.same({}, failures)
      for _, e in ipairs(sup:lines("^exit\t%d+\t(%d+)")) do assert.is_true(old[e[1]]) end
      local _, pid = ask(port)
      assert.is_nil(old[pid]) -- a new worker answers
      stop_cleanly(sup)
    end, { timeout = 90 }))

  it("keeps the old workers when the reloaded code fails at start", async(function()
    local path = H.tmpfile(("return loadfile(%q)(...)\n"):format(fixture))
    local sup <close> = start(2, "serve", { script = path })
    local port, ls = sup:listening(2)
    local f = assert(io.open(path, "w"))
    f:write('error("broken reload")\n')
    f:close()
    sup:signal("SIGHUP")
    sup:wait_until(function() return sup:stderr():find("reload failed", 1, true) end,
      "the failed reload")
    os.remove(path)
    assert.matches("broken reload", sup:stderr())
    local old = { [ls[1][4]] = true, [ls[2][4]] = true }
    for _ = 1, 4 do
      local _, pid = ask(port)
      assert.is_true(old[pid])
    end
    stop_cleanly(sup)
  end, { timeout = 60 }))

  it("adds a worker on SIGTTIN and removes one on SIGTTOU", async(function()
    local sup <close> = start(1, "serve")
    sup:listening(1)
    sup:signal("SIGTTIN")
    local _, ls = sup:listening(2)
    assert.equal("2", ls[2][2])
    sup:signal("SIGTTOU")
    sup:wait_until(function() return #sup:lines("^exit\t2\t") == 1 end, "worker 2's exit")
    stop_cleanly(sup)
  end, { timeout = 60 }))

  it("kills a worker that does not stop within the grace period", async(function()
    local sup <close> = start(1, "stubborn", { grace = 0.5 })
    sup:listening(1)
    sup:signal("SIGTERM")
    sup:wait_until(function() return #sup:lines("^stubborn") == 1 end, "the SIGTERM handler")
    assert.equal(0, sup:finish(), sup:report())
    assert.matches("did not stop within the grace period", sup:stderr())
    assert.is_false(group_alive(sup.pid))
  end, { timeout = 60 }))

  it("stops at once on SIGQUIT: the workers are killed, no request is awaited", async(function()
    local sup <close> = start(2, "serve")
    local port = sup:listening(2)
    local reader, writer = aio.open_connection("127.0.0.1", port)
    writer:write("slow\n")
    sup:wait_until(function() return #sup:lines("^slow") == 1 end, "the slow request")
    sup:signal("SIGQUIT")
    assert.equal(0, sup:finish(), sup:report())
    assert.equal("", reader:read()) -- the connection ends unanswered
    writer:close()
    assert.equal(0, #sup:lines("^exit"))
    assert.is_false(group_alive(sup.pid))
  end, { timeout = 60 }))

  it("stops the workers when the supervisor is killed", async(function()
    local sup <close> = start(2, "serve")
    sup:listening(2)
    sup.p:kill()
    sup:wait_until(function() return #sup:lines("^exit") == 2 and sup.out.eof end,
      "the workers' exits")
    assert.equal(-9, sup:finish())
    assert.is_true(group_gone(sup.pid))
  end, { timeout = 60 }))

  it("exits non-zero with the error of a script that fails at start", function()
    local path = H.tmpfile('error("boom at start")\n')
    local _, err, code = H.aloop_capture("--workers 2 " .. H.q(path))
    os.remove(path)
    assert.equal(1, code)
    assert.matches("boom at start", err)
    assert.matches("before it was ready, 3 times in a row", err)
  end)
end)
