-- Helpers of the HTTP specs: peers (curl, Debian's python3 with requests/aiohttp, nginx) run as
-- child processes through aloop's subprocesses, so the loop keeps serving meanwhile; a raw
-- socket client for what no well-behaved peer sends.
local aio = require "aloop"
local http = require "aloop.http"
local H = require "spec.helper"

local T = {}
T.PY = "/usr/bin/python3"

-- within(seconds, fn, ...) -> fn(...) under aio.wait_for
function T.within(seconds, fn, ...) return aio.wait_for(aio.coro(fn, ...), seconds) end

-- run(cmd [, input]) -> output (stdout and stderr), exit code; without the sanitizer preload
function T.run(cmd, input)
  local PIPE = aio.subprocess.PIPE
  local p = aio.create_subprocess_shell("exec env -u LD_PRELOAD sh -c " .. H.q(cmd),
    { stdin = input and PIPE or aio.subprocess.DEVNULL, stdout = PIPE, stderr = aio.subprocess.STDOUT })
  local out = T.within(30, p.communicate, p, input)
  return out, p.returncode
end

-- python(src, args) -> output, exit code (Debian's python3: requests and aiohttp)
function T.python(src, args)
  local f = H.tmpfile(src)
  local out, rc = T.run(T.PY .. " " .. f .. " " .. (args or ""))
  os.remove(f)
  return out, rc
end

-- serve(app [, opts]) -> srv, "http://127.0.0.1:PORT"
function T.serve(app, opts)
  local srv = http.serve(app, "127.0.0.1", 0, opts)
  return srv, "http://127.0.0.1:" .. srv:port()
end

-- raw(port, data [, opts]) -> everything the server sent until it closed (opts.timeout = 10;
-- opts.eof: half-close after sending)
function T.raw(port, data, opts)
  local r, w = aio.open_connection("127.0.0.1", port)
  if data and data ~= "" then w:write(data) end
  if opts and opts.eof then w:write_eof() end
  local ok, out = pcall(T.within, (opts and opts.timeout) or 10, r.read, r, -1)
  w:close()
  if not ok then error(out, 0) end
  return out
end

-- spawn(cmd) -> a Process whose first stdout line is its port (aiohttp, http.server scripts)
function T.spawn_port(cmd)
  local p = aio.create_subprocess_shell("exec env -u LD_PRELOAD " .. cmd,
    { stdout = aio.subprocess.PIPE, stdin = aio.subprocess.DEVNULL })
  local line = T.within(20, p.stdout.readline, p.stdout)
  local port = tonumber(line:match("(%d+)"))
  if not port then
    p:kill()
    p:wait()
    error("peer did not start: " .. line, 2)
  end
  return p, port
end

-- stop(p): terminates a peer and waits for it
function T.stop(p)
  if p.returncode == nil then p:terminate() end
  T.within(10, p.wait, p)
end

-- free_port(): a port the OS picks (bound, read, released) for peers that cannot report theirs
function T.free_port()
  local s = aio.socket.socket(aio.socket.AF_INET, aio.socket.SOCK_STREAM)
  s:bind { "127.0.0.1", 0 }
  local port = s:getsockname()[2]
  s:close()
  return port
end

-- nginx(dir, server_block) -> Process, port: nginx (one worker, daemon off) on a free port
function T.nginx(dir, server_block)
  local port = T.free_port()
  local conf = dir .. "/nginx.conf"
  local f = assert(io.open(conf, "w"))
  f:write(([[
worker_processes 1;
daemon off;
error_log %s/error.log;
pid %s/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %s;
  server { listen 127.0.0.1:%d; %s }
}
]]):format(dir, dir, dir, port, server_block))
  f:close()
  local p = aio.create_subprocess_exec("nginx", "-c", conf, "-p", dir, { stdin = aio.subprocess.DEVNULL })
  for _ = 1, 200 do -- until it accepts (bounded: 200 tries, 10 ms apart)
    local ok, r, w = pcall(aio.open_connection, "127.0.0.1", port)
    if ok then
      w:close()
      return p, port
    end
    aio.sleep(0.01)
  end
  T.stop(p)
  error("nginx did not start", 2)
end

-- Statuses of every response in a byte string, in order.
function T.statuses(data)
  local list = {}
  for s in data:gmatch("HTTP/1%.1 (%d%d%d)") do list[#list + 1] = tonumber(s) end
  return list
end

return T
