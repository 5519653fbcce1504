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

-- Statuses of every response in a byte string, in order.
function T.statuses(data)
  local list = {}
  for s in data:gmatch("HTTP/1%.1 (%d%d%d)") do list[#list + 1] = tonumber(s) end
  return list
end

return T
