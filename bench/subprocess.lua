-- Subprocess benchmark (aloop side; bench/subprocess_py.py is the asyncio/uvloop twin):
--   spawn N: spawn-and-wait `true` N times with K children in flight -> spawns/s
--   pipe M:  M MiB from the parent through `cat` and back (stdin and stdout at once) -> MiB/s
-- Usage: aloop bench/subprocess.lua spawn N K | pipe M
local aio = require "aloop"
local PIPE = aio.subprocess.PIPE
local mode, a, b = arg[1], tonumber(arg[2]), tonumber(arg[3])

aio.run(function()
  local loop = aio.get_running_loop()
  local t0 = loop:time()
  if mode == "spawn" then
    local n, k, next_i = a, b, 0
    local function worker()
      while next_i < n do
        next_i = next_i + 1
        local p = aio.create_subprocess_exec("true")
        assert(p:wait() == 0)
      end
    end
    local ws = {}
    for i = 1, k do ws[i] = aio.create_task(worker) end
    aio.gather(ws)
    print(("aloop spawn %d in-flight=%d: %.0f spawns/s"):format(n, k, n / (loop:time() - t0)))
  else
    local mib = a
    local chunk = string.rep("x", 1 << 20)
    local p = aio.create_subprocess_exec("cat", {stdin = PIPE, stdout = PIPE})
    local feeder = aio.create_task(function()
      for _ = 1, mib do
        p.stdin:write(chunk)
        p.stdin:drain()
      end
      p.stdin:close()
    end)
    local got = 0
    while true do
      local d = p.stdout:read(1 << 18)
      if d == "" then break end
      got = got + #d
    end
    aio.await(feeder)
    p:wait()
    assert(got == mib << 20)
    print(("aloop pipe %d MiB through cat: %.0f MiB/s"):format(mib, mib / (loop:time() - t0)))
  end
end)
