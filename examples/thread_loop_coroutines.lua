-- Seed 004 (asyncio notes), "非阻塞loop (coroutine)" (a loop in another thread, coroutines).
-- run_coroutine_threadsafe hands coroutines to a loop running in another OS thread: they sleep
-- with aio.sleep, so they overlap and both finish after one delay. Usage: [seconds=0.2]
local aio = require "aloop"

local seconds = tonumber(arg[1]) or 0.2          -- the seed uses 3

local function do_some_work(x, start)
  local aio = require "aloop"
  print(("Waiting %s"):format(x))
  aio.sleep(x)
  print(("Finished more work %s at %.1f"):format(x, aio.get_running_loop():time() - start))
end

local main_loop = aio.get_event_loop()
local start = main_loop:time()
local new_loop = aio.thread.start_loop()
print(("TIME: %.1f"):format(main_loop:time() - start))

local f1 = aio.run_coroutine_threadsafe(aio.coro(do_some_work, seconds, start), new_loop)
local f2 = aio.run_coroutine_threadsafe(aio.coro(do_some_work, seconds, start), new_loop)
f1:result()                                      -- concurrent futures: block until done
f2:result()
new_loop:stop()
new_loop:join()
main_loop:close()
