-- Seed 004, "ping" with a subprocess: read a command's output line by line as it comes.
-- Instead of the network, a local shell loop prints a ping-like line every 20 ms.
local aio = require "aloop"

local count = tonumber(arg[1]) or 4
local cmd = ("for i in $(seq 1 %d); do echo \"64 bytes from 127.0.0.1: icmp_seq=$i ttl=64\"; "
             .. "sleep 0.02; done"):format(count)

aio.run(function()
  local proc = aio.create_subprocess_shell(cmd, {stdout = aio.subprocess.PIPE})
  while true do
    local line = proc.stdout:readline()
    if line == "" then break end
    local seq = line:match("icmp_seq=(%d+)")
    print("reply " .. seq .. ": " .. line:gsub("\n$", ""))
  end
  print("ping exited with " .. proc:wait())
end)
