-- Seed 002 (Korean notes "Async I/O"), "a simple example of single-threaded parallel processing".
-- Three sleepers wait concurrently; they finish in order of delay, not of creation.
-- Delays are in tenths of a second here (the seed uses whole seconds).
local aio = require "aloop"

local sleeper = aio.async(function(delay)
  aio.sleep(delay / 10)                          -- aio.sleep does not block the loop
  print(("Finished sleeper with delay: %d"):format(delay))
end)

local loop = aio.get_event_loop()
local done, pending = loop:run_until_complete(aio.wait, {
  sleeper(1),
  sleeper(3),
  sleeper(2),
})
