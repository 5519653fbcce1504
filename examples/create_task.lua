-- Seed 004 (Chinese notes on asyncio), "create task".
-- Calling a coroutine function (aio.async) gives a coroutine object; loop:create_task wraps it in
-- a Task (aio.ensure_future(coroutine) is equivalent) and run_until_complete runs it.
local aio = require "aloop"

local loop = aio.get_event_loop()
local do_some_work = aio.async(function(x)
  print("Waiting: ", x)
end)

local coroutine = do_some_work(2)
-- local task = aio.ensure_future(coroutine)
local task = loop:create_task(coroutine)
loop:run_until_complete(task)
