-- Seed 000 (asyncio wiki digest), "example : future with run_until_complete()".
-- A task completes a Future after a delay; run_until_complete(future) returns when it is done
-- (it is notified through add_done_callback internally).
local aio = require "aloop"

local function slow_operation(future)
  aio.sleep(0.1)                                 -- the seed sleeps 1 s
  future:set_result("Future is done!")
end

local loop = aio.get_event_loop()
local future = loop:create_future()
aio.ensure_future(slow_operation, future)
loop:run_until_complete(future)
print(future:result())
loop:close()
