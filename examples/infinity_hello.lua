-- Seed 003 (slides "Introduction to asyncio"), "asyncio 101".
-- A coroutine that prints hello! forever, sleeping between prints. To end by itself it stops after
-- `count` prints. Usage: infinity_hello.lua [count=3 | forever] [interval=0.1] (the seed: 1 s).
local aio = require "aloop"

local count = arg[1] == "forever" and math.huge or tonumber(arg[1]) or 3
local interval = tonumber(arg[2]) or 0.1

local loop = aio.get_event_loop()

local function infinity()
  local printed = 0
  while printed < count do                       -- the seed: while True
    print("hello!")
    printed = printed + 1
    aio.sleep(interval)
  end
end

loop:run_until_complete(infinity)
