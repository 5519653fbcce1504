-- Helpers of the Redis specs: R.server(opts) starts a real redis-server (Debian's) on a free
-- loopback port with persistence off and the DEBUG command enabled, and stops it with
-- srv:stop(). The port is one the OS just handed to an ephemeral socket (redis-server refuses
-- --port 0); if another process takes it first, the start is retried on a new one.
local aio = require "aloop"
local H = require "spec.helper"

local R = {}

-- A shell command without the sanitizer runtime the ASan suite preloads (the tools are not ours).
local function sh(cmd) return H.sh("env -u LD_PRELOAD " .. cmd) end

local function free_port()
  local s = aio.socket.socket("inet")
  s:bind({ "127.0.0.1", 0 })
  local port = s:getsockname()[2]
  s:close()
  return port
end

-- redis-cli against the server: its output (stdout+stderr) and exit code.
local function cli(srv, args)
  local auth = srv.password and ("--no-auth-warning -a " .. H.q(srv.password) .. " ") or ""
  return sh(("redis-cli -h 127.0.0.1 -p %d %s%s"):format(srv.port, auth, args))
end

local Server = {}
Server.__index = Server
Server.cli = cli

-- Starts redis-server on srv.port; true once it answers PING (bounded wait).
local function launch(srv)
  local cmd = ("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no "
    .. "--enable-debug-command local --daemonize yes --dir %s --pidfile %s/redis.pid "
    .. "--logfile %s/redis.log %s"):format(srv.port, srv.dir, srv.dir, srv.dir, srv.extra)
  local out, code = sh(cmd)
  if code ~= 0 then error("redis-server did not start: " .. out) end
  for _ = 1, 200 do
    local res = cli(srv, "ping")
    if res:find("PONG", 1, true) or res:find("NOAUTH", 1, true) then
      local f = io.open(srv.dir .. "/redis.pid")
      srv.pid = f and f:read("n")
      if f then f:close() end
      return true
    end
    sh("sleep 0.02")
  end
  return false
end

-- R.server{password=, args=}: a started server: srv.port, srv.url, srv:cli(args), srv:stop().
function R.server(opts)
  opts = opts or {}
  local dir = sh("mktemp -d"):gsub("%s+$", "")
  local srv = setmetatable({ dir = dir, password = opts.password, extra = opts.args or "" }, Server)
  if opts.password then srv.extra = srv.extra .. " --requirepass " .. H.q(opts.password) end
  for _ = 1, 5 do
    srv.port = free_port()
    if launch(srv) then
      srv.url = ("redis://127.0.0.1:%d/0"):format(srv.port)
      return srv
    end
  end
  error("could not start redis-server; log:\n" .. (sh("cat " .. dir .. "/redis.log")))
end

-- Kills the server at once (SIGKILL), as a crash would, and waits until it is gone.
function Server:kill()
  if not self.pid then return end
  sh("kill -9 " .. self.pid)
  for _ = 1, 200 do -- gone, or a zombie nobody reaped yet (the daemon's parent is init)
    local f = io.open("/proc/" .. self.pid .. "/stat")
    local state = f and f:read("l"):match("^%d+ %b() (%a)")
    if f then f:close() end
    if not state or state == "Z" then break end
    sh("sleep 0.02")
  end
  self.pid = nil
end

-- Starts it again on the same port (after kill()).
function Server:restart()
  assert(launch(self), "redis-server did not restart on port " .. self.port)
end

function Server:stop()
  self:kill()
  sh("rm -rf " .. H.q(self.dir))
end

R.free_port = free_port -- a port for a second listener (e.g. --tls-port)

return R
