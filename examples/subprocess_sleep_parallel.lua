-- Seed 002, subprocesses: three `sleep 0.1` children one after the other, then all at once.
-- Each prints "start" when its child is spawned and "done" when it has exited: run in
-- parallel, every child starts before the first one is done (the waits overlap).
local aio = require "aloop"

local function run_sleep(i, delay)
  local proc = aio.create_subprocess_exec("sleep", tostring(delay))
  print(("start %d (pid %s)"):format(i, proc.pid > 0 and "ok" or "?"))
  local rc = proc:wait()
  print(("done %d: exit %d"):format(i, rc))
end

aio.run(function()
  local loop = aio.get_running_loop()
  local t0 = loop:time()
  print("sequential:")
  for i = 1, 3 do run_sleep(i, 0.1) end
  local seq = loop:time() - t0
  t0 = loop:time()
  print("parallel:")
  local tasks = {}
  for i = 1, 3 do tasks[i] = aio.create_task(run_sleep, i, 0.1) end
  aio.gather(tasks)
  local par = loop:time() - t0
  print(("sequential took %.2f s, parallel %.2f s"):format(seq, par))
end)
