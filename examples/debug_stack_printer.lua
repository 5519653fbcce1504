-- Seed 002 (Korean notes "Async I/O"), "Event loops" (debugging async functions), in debug mode.
-- The stack printer of stack_printer.lua with loop:set_debug(true) (or ALOOP_DEBUG=1): each task
-- also says where it was created, and a slow step is logged with how long it took.
local aio = require "aloop"

local function sleeper(delay)
  aio.sleep(delay)
end

local function stack_printer()
  for task in pairs(aio.all_tasks()) do
    task:print_stack()
  end
  local t = os.clock()
  while os.clock() - t < 0.15 do end -- a step slower than slow_callback_duration (0.1 s)
end

local loop = aio.get_event_loop()
loop:set_debug(true)
local other = loop:create_task(sleeper, 0.05)
loop:run_until_complete(stack_printer)
loop:run_until_complete(other)
loop:close()
