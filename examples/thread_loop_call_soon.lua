-- Seed 004 (asyncio notes), "阻塞loop (普通func)" (a loop in another thread, plain functions).
-- A loop running in another OS thread, fed with call_soon_threadsafe: the blocking calls
-- (time.sleep; here the `sleep` command) run one after the other. Usage: [seconds=0.2]
local aio = require "aloop"

local seconds = tonumber(arg[1]) or 0.2          -- the seed uses 3

-- Runs in the other thread: no upvalues, so the start time comes as an argument.
local function more_work(x, start)
  local loop = require("aloop").get_event_loop()
  print(("More work %s"):format(x))
  os.execute("sleep " .. x)                      -- blocks the other thread's loop
  print(("Finished more work %s at %.1f"):format(x, loop:time() - start))
end

local start = aio.get_event_loop():time()        -- the same monotonic clock in every thread
local new_loop = aio.thread.start_loop()         -- start_loop: run_forever in a new thread
print("start_loop")
new_loop:call_soon_threadsafe(more_work, seconds, start)
new_loop:call_soon_threadsafe(more_work, seconds, start)
new_loop:stop()                                  -- queued after the two calls
new_loop:join()
aio.get_event_loop():close()
