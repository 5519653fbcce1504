-- Seed 002, subprocesses: pipe a Lua script into an interpreter's stdin (`aloop -`, or
-- `lua5.4 -`) and read what it prints line by line while it runs.
local aio = require "aloop"

local script = [[
local aio = require "aloop"
for i = 1, 3 do
  print("line " .. i .. " from the child")
  io.stdout:flush()
  aio.run(aio.sleep, 0.02)
end
]]

aio.run(function()
  local interp = arg[-1] or "aloop"
  local proc = aio.create_subprocess_exec(interp, "-", {stdin = aio.subprocess.PIPE,
                                                        stdout = aio.subprocess.PIPE})
  proc.stdin:write(script)
  proc.stdin:drain()
  proc.stdin:close() -- EOF: the interpreter runs what it read
  for line in proc.stdout:lines() do
    io.write("got: ", line)
  end
  print("exit code: " .. proc:wait())
end)
