-- Seed 000 (asyncio wiki digest), "7. Synchronization primitives" > "Event": set() and wait().
-- Several tasks wait for one event; a single set() wakes them all, in the order they waited.
local aio = require "aloop"

local function waiter(event, name)
  print(name .. " waits for the event")
  event:wait()
  print(name .. " got the event")
end

aio.run(function()
  local event = aio.Event()
  local tasks = {}
  for i = 1, 3 do tasks[i] = aio.create_task(waiter, event, "waiter " .. i) end
  aio.sleep(0.05)
  print("setting the event")
  event:set()
  aio.gather(tasks)
  print("is_set: " .. tostring(event:is_set()))
end)
