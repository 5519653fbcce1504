-- Seed 000 (asyncio wiki digest), "7. Synchronization primitives" > "Condition": wait() and
-- notify_all(), as a small producer/consumer scene: consumers wait on a condition until the
-- producer has put enough items on a shelf, then each takes one.
local aio = require "aloop"

local cond = aio.Condition()
local shelf = {}

local function consumer(name)
  local _ <close> = cond:acquire()
  cond:wait_for(function() return #shelf > 0 end)   -- wait() in a loop until the shelf has items
  print(name .. " takes " .. table.remove(shelf, 1))
end

local function producer(n)
  aio.sleep(0.05)
  local _ <close> = cond:acquire()
  for i = 1, n do shelf[#shelf + 1] = "item " .. i end
  print("producer put " .. n .. " items, notify_all")
  cond:notify_all()
end

aio.run(function()
  local tasks = {}
  for i = 1, 3 do tasks[i] = aio.create_task(consumer, "consumer " .. i) end
  producer(3)
  aio.gather(tasks)
end)
