-- Seed 002 (Korean notes "Async I/O"), "Event loop usage" (a blocking printer), and seed 001's
-- point that blocking calls stall the loop: with loop:run_in_executor the blocking call runs in
-- a worker thread, so a ticker task keeps running meanwhile. Usage: [seconds=0.5]
local aio = require "aloop"

local seconds = tonumber(arg[1]) or 0.5

local function blocking(x)                       -- time.sleep: here the `sleep` command
  os.execute("sleep " .. x)
  return "slept " .. x
end

aio.run(function()
  local loop = aio.get_running_loop()
  local t = loop:time()
  local ticks = 0
  local ticker = aio.create_task(function()
    while true do
      aio.sleep(0.1)
      ticks = ticks + 1
      print(("tick at %.1f"):format(loop:time() - t))
    end
  end)
  print(("Started blocking at %.1f"):format(loop:time() - t))
  local result = loop:run_in_executor(nil, blocking, seconds):await()
  print(("Finished blocking at %.1f: %s"):format(loop:time() - t, result))
  ticker:cancel()
  print(("the loop ticked %s while the call blocked"):format(ticks >= 1 and "on" or "NOT"))
end)
