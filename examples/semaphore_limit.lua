-- Seed 000 (asyncio wiki digest), "7. Synchronization primitives" > "Semaphores": acquire() and
-- release(). Six downloads (simulated: each yields twice) share a Semaphore(2): at most two run
-- at once, and the others start in the order they asked.
local aio = require "aloop"

local sem = aio.Semaphore(2)
local running, most = 0, 0

local function download(i)
  local _ <close> = sem:acquire()          -- released when the function returns
  running = running + 1
  if running > most then most = running end
  print(("start %d (running: %d)"):format(i, running))
  aio.sleep(0)
  aio.sleep(0)
  running = running - 1
  print(("end %d"):format(i))
end

aio.run(function()
  local tasks = {}
  for i = 1, 6 do tasks[i] = aio.create_task(download, i) end
  aio.gather(tasks)
  print("at most " .. most .. " at once")
end)
