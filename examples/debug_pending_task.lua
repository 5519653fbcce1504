-- Seed 000 (asyncio reference digest), "9. Develop with asyncio": pending task destroyed. A task
-- still waiting when its loop is closed is reported with its stack; with ALOOP_DEBUG=1 the
-- report also says where the task was created.
local aio = require "aloop"

local function kill_me()
  aio.sleep(3600)
  print("never reached")
end

local loop = aio.get_event_loop()
local task = loop:create_task(kill_me)
loop:run_until_complete(aio.sleep, 0.01) -- the task starts and waits
loop:close()                             -- it is still pending
print("closed")
