-- Seed 001 ("Python 3: An Intro to asyncio"), "Tasks" (the paragraph on cancel).
-- A task waiting in aio.sleep is cancelled: the sleep raises CancelledError inside the task,
-- which may catch it (pcall); re-raised, the task ends cancelled and awaiting it raises too.
local aio = require "aloop"

local function my_task(seconds)
  print(("This task is taking %s seconds to complete"):format(seconds))
  local ok, err = pcall(aio.sleep, seconds)
  if not ok then
    print("my_task got CancelledError:", aio.iserror(err, aio.CancelledError))
    error(err, 0)                                -- let the cancellation finish the task
  end
  return "task finished"
end

local function main()
  local task = aio.create_task(my_task, 10)
  aio.sleep(0.05)                                -- let the task start waiting
  print("cancelling the task")
  task:cancel()
  local ok, err = pcall(aio.await, task)
  print("awaiting the task raised CancelledError:", not ok and aio.iserror(err, aio.CancelledError))
  print("task cancelled:", task:cancelled())
end

aio.run(main)
