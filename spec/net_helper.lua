-- Helpers shared by the networking specs: it_fds(name, fn) runs fn as a task (spec.helper's
-- H.run) and checks that the process has exactly as many sockets open afterwards
-- as before. (Counting every fd is noisy: unrelated pipes come and go in the test process.)
local H = require "spec.helper"

local N = {}

-- Open sockets of this process.
function N.socket_count()
  local p = io.popen("ls -l /proc/" .. H.pid() .. "/fd 2>/dev/null")
  local n = 0
  for line in p:lines() do
    if line:find("socket:", 1, true) then n = n + 1 end
  end
  p:close()
  return n
end

-- N.it_fds(it): busted's `it` is local to each spec file's environment.
function N.it_fds(it) return function(name, fn)
  it(name, function()
    local before = N.socket_count()
    H.run(fn)
    local after = N.socket_count()
    if after ~= before then
      error(("sockets left open: %d before, %d after"):format(before, after), 0)
    end
  end)
end end

return N
