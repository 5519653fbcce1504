-- Seed 004 (Chinese notes on asyncio), "task with async/await".
-- A task that sleeps and returns a value: run_until_complete returns the task's result, and
-- task:result() gives it again. Seconds are scaled down (the seed leaves x to the caller).
local aio = require "aloop"

local function func(x)
  aio.sleep(x)
  return ("Done after %ss"):format(x)
end

local loop = aio.get_event_loop()
local task = loop:create_task(func, 0.1)
print(loop:run_until_complete(task))
print(task:result())
loop:close()
