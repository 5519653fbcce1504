-- Seed 004 (Chinese notes on asyncio), "task 回调" (task callbacks).
-- add_done_callback(fn) calls fn(task) once the task is done; the callback runs before
-- run_until_complete returns, and the task's result is also read afterwards (future == task).
local aio = require "aloop"

local func = aio.async(function(x)
  return x + 1
end)

local function callback(future)
  print("Callback: ", future:result())
end

local loop = aio.get_event_loop()
local task = aio.ensure_future(func(1))
task:add_done_callback(callback)

loop:run_until_complete(task)
print(task:result())
