-- Seed 002 (Korean notes "Async I/O"), "Event loops".
-- A callback creates the task (call_soon(loop.create_task, coro)) and a timer stops run_forever;
-- delays are in tenths of a second here (the seed sleeps 1 s and stops after 2 s).
local aio = require "aloop"

local sleeper = aio.async(function(delay)
  aio.sleep(delay / 10)
  print(("Finished sleeper with delay: %d"):format(delay))
end)

local loop = aio.get_event_loop()
local result = loop:call_soon(loop.create_task, loop, sleeper(1))
result = loop:call_later(0.2, loop.stop, loop)
loop:run_forever()
