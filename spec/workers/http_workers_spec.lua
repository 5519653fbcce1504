-- HTTP under several processes: app:run{workers = N} in a plain `aloop app.lua` (the script
-- execs itself under the supervisor), and a worker's graceful stop wired to the HTTP server's
-- shutdown (idle keep-alive connections close at once, in-flight requests finish with
-- Connection: close). The real binary runs spec/fixtures/worker_http_app.lua in its own process
-- group; real clients (curl, python3's http.client) talk to it on 127.0.0.1.
local aio = require "aloop"
local H = require "spec.helper"
local W = require "spec.workers_helper"

local async, PIPE = H.async, aio.subprocess.PIPE
local fixture = H.root .. "/spec/fixtures/worker_http_app.lua"
local client_py = H.root .. "/spec/fixtures/http_keepalive_client.py"
-- The grace period the fixture gets (shutdown_timeout, --grace): the stops below must end long
-- before it, within STOP seconds (a generous bound for the sanitizer builds, no timing assert).
local GRACE, STOP = "300", 60

-- A GET with curl (a new connection each time); returns the body.
local function curl(url)
  local p = aio.create_subprocess_exec("env", "-u", "LD_PRELOAD", "curl", "-sS", "--max-time",
    "30", url, { stdout = PIPE, stderr = PIPE })
  local out, err = aio.wait_for(aio.coro(p.communicate, p), 40)
  assert.equal(0, p.returncode, err)
  return out
end

-- The supervisor for mode "run" (app:run{workers = 2} execs it) or "serve" (http.serve under
-- `aloop --workers 2`).
local function start(mode)
  if mode == "run" then return W.spawn(fixture, "run") end
  return W.spawn("--workers", "2", "--grace", GRACE, fixture, "serve")
end

local function pids_of(ls)
  local pids = {}
  for _, l in ipairs(ls) do pids[l[4]] = l[2] end
  return pids
end

describe("http under aloop --workers", function()
  it("app:run{workers = 2} in a plain `aloop app.lua` serves from two worker processes",
    async(function()
      local sup <close> = start("run")
      local port, ls = sup:listening(2)
      local pids = pids_of(ls)
      assert.is_nil(pids[tostring(sup.pid)]) -- the process started became the supervisor
      for _, l in ipairs(ls) do
        assert.equal(port, tonumber(l[1])) -- port 0 bound once, for both
        assert.equal("2", l[3])
      end
      -- ?once=1: the answering worker closes its listening socket, so the next new connection
      -- can only reach the other one.
      local url = ("http://127.0.0.1:%d/pid?once=1"):format(port)
      local id1, pid1 = curl(url):match("^(%d) (%d+)$")
      local id2, pid2 = curl(url):match("^(%d) (%d+)$")
      assert.equal(id1, pids[pid1])
      assert.equal(id2, pids[pid2])
      assert.are_not.equal(pid1, pid2)
      W.stop_cleanly(sup)
      assert.equal(2, #sup:lines("^exit"))
    end, { timeout = 90 }))

  for _, mode in ipairs { "run", "serve" } do
    local how = mode == "run" and "app:run{workers = 2}" or "http.serve under --workers 2"
    it(how .. ": SIGTERM closes an idle keep-alive connection at once, answers the request in "
      .. "flight with Connection: close, and every process exits", async(function()
        local sup <close> = start(mode)
        local port = sup:listening(2)
        local client = aio.create_subprocess_exec("env", "-u", "LD_PRELOAD", "/usr/bin/python3",
          client_py, tostring(port), { stdout = PIPE })
        local function client_line()
          return aio.wait_for(aio.coro(client.stdout.readline, client.stdout), W.WAIT)
        end
        local ok, err = pcall(function()
          assert.matches("^idle 200 %- %d %d+\n$", client_line()) -- kept alive: no close
          sup:wait_until(function() return #sup:lines("^slow") == 1 end, "the slow request")
          sup:signal("SIGTERM")
          -- Stopped long before the grace period, or the bound fails the test.
          assert.equal(0, sup:finish(STOP), sup:report())
          assert.matches("^slow 200 close slow done %d %d+ closing\n$", client_line())
          assert.equal("idle-eof True\n", client_line())
          assert.equal(0, aio.wait_for(aio.coro(client.wait, client), W.WAIT))
        end)
        if client.returncode == nil then client:kill() client:wait() end
        assert(ok, err)
        assert.equal(2, #sup:lines("^exit"))
        assert.is_false(W.group_alive(sup.pid))
      end, { timeout = 150 }))
  end

  it("app:run refuses a bad workers value and where it cannot exec the supervisor", function()
    local app = 'local http = require "aloop.http"; local app = http.App{}; '
    local _, err, code = H.aloop_script(app .. "app:run{workers = -1}")
    assert.equal(1, code)
    assert.matches("workers must be an integer from 0 %(one per CPU%) to 4096", err)
    _, err, code = H.aloop_script(app .. 'app:run{workers = "2"}')
    assert.equal(1, code)
    assert.matches("workers must be an integer", err)
    _, err, code = H.aloop_script(app .. "app:run{shutdown_timeout = -1}")
    assert.equal(1, code)
    assert.matches("shutdown_timeout must be a number >= 0", err)
    _, err, code = H.aloop_capture(H.q("-e") .. " " .. H.q(app .. "app:run{workers = 2}"))
    assert.equal(1, code)
    assert.matches("cannot start the supervisor: it needs the aloop interpreter running a "
      .. "script file", err)
    _, err, code = H.aloop_script(app
      .. "require('aloop').run(function() app:run{workers = 2} end)")
    assert.equal(1, code)
    assert.matches("must be called outside a running loop", err)
  end)
end)
