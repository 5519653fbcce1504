-- Seed 000 (asyncio wiki digest), "8. Queues" > "JoinableQueue": in aloop (as in asyncio since
-- 3.4.4) every Queue is joinable. A consumer calls task_done() for each item it has handled;
-- join() returns once every item put has been handled.
local aio = require "aloop"

local function consumer(q)
  while true do
    local job = q:get()
    aio.sleep(0.01)                    -- handle the job
    print("handled " .. job)
    q:task_done()
  end
end

aio.run(function()
  local q = aio.Queue()
  for i = 1, 4 do q:put("job " .. i) end
  local c = aio.create_task(consumer, q)
  q:join()                             -- until task_done() was called 4 times
  print("all jobs handled, qsize = " .. q:qsize())
  c:cancel()                           -- the consumer waits in get() forever: stop it
  print("consumer cancelled: " .. tostring(not pcall(aio.await, c)))
end)
