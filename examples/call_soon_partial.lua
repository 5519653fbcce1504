-- Seed 001 ("Python 3: An Intro to asyncio"), "Scheduling Calls" (call_soon + functools.partial).
-- Two plain callbacks run in FIFO order; the second stops run_forever. call_soon passes extra
-- arguments itself, and a closure stands in for partial(event_handler, loop, stop=True).
local aio = require "aloop"

local function event_handler(loop, stop)
  print("Event handler called")
  if stop then
    print("stopping the loop")
    loop:stop()
  end
end

local loop = aio.get_event_loop()
local ok, err = pcall(function()
  loop:call_soon(event_handler, loop)
  print("starting event loop")
  loop:call_soon(function() event_handler(loop, true) end)
  loop:run_forever()
end)
print("closing event loop")                      -- finally
loop:close()
if not ok then error(err, 0) end
