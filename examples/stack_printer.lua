-- Seed 002 (Korean notes "Async I/O"), "Event loops" (debugging async functions).
-- A task prints the stack of every unfinished task (aio.all_tasks + task:print_stack). A sleeping
-- task is started first so there is a suspended stack to show (the notebook had earlier tasks).
local aio = require "aloop"

local function sleeper(delay)
  aio.sleep(delay)
end

local function stack_printer()
  for task in pairs(aio.all_tasks()) do
    task:print_stack()
  end
end

local loop = aio.get_event_loop()
local other = loop:create_task(sleeper, 0.05)
local result = loop:run_until_complete(stack_printer)
loop:run_until_complete(other)
