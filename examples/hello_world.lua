-- Seed 000 (asyncio wiki digest), "example : hello world coroutine".
-- The smallest program: run one coroutine to completion on the default loop, then close the loop.
local aio = require "aloop"

local function hello_world()
  print("Hello World!")
end

local loop = aio.get_event_loop()
-- Blocking call which returns when the hello_world() coroutine is done
loop:run_until_complete(hello_world)
loop:close()
