-- Seed 001 ("Python 3: An Intro to asyncio"), "Tasks".
-- A task that blocks with a real sleep (time.sleep; here the `sleep` command), run with
-- create_task + run_until_complete; its result is read afterwards. Usage: [seconds=0.2]
local aio = require "aloop"

local seconds = tonumber(arg[1]) or 0.2          -- the seed uses 2

-- A task to do for a number of seconds
local function my_task(seconds)
  print(("This task is taking %s seconds to complete"):format(seconds))
  os.execute(("sleep %s"):format(seconds))       -- blocks the whole loop, like time.sleep
  return "task finished"
end

local my_event_loop = aio.get_event_loop()
local task_obj
local ok, err = pcall(function()
  print("task creation started")
  task_obj = my_event_loop:create_task(my_task, seconds)
  my_event_loop:run_until_complete(task_obj)
end)
my_event_loop:close()                            -- finally
if not ok then error(err, 0) end
print(("The task's result was: %s"):format(task_obj:result()))
