-- Seed 001 ("Python 3: An Intro to asyncio"), "Scheduling Calls" (call_later and call_at).
-- The same event handler, delayed: call_later(delay, ...) and call_at(loop:time() + delay, ...).
-- The seed waits 300 s for call_at; here 0.1 s and 0.2 s, so call_later fires first.
local aio = require "aloop"

local function event_handler(loop, stop)
  print("Event handler called")
  if stop then
    print("stopping the loop")
    loop:stop()
  end
end

local loop = aio.get_event_loop()
local current_time = loop:time()
loop:call_later(0.1, event_handler, loop)
loop:call_at(current_time + 0.2, event_handler, loop, true)
print("starting event loop")
local ok, err = pcall(loop.run_forever, loop)
print("closing event loop")                      -- finally
loop:close()
if not ok then error(err, 0) end
