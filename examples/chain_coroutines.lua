-- Seed 000 (asyncio wiki digest), "example : chain coroutines".
-- One coroutine awaits another. Tasks are stackful, so `yield from compute(x, y)` is a plain call:
-- compute suspends the whole task in aio.sleep and returns its value to print_sum.
local aio = require "aloop"

local function compute(x, y)
  print(("Compute %s + %s ..."):format(x, y))
  aio.sleep(0.1)                                 -- the seed sleeps 1.0 s
  return x + y
end

local function print_sum(x, y)
  local result = compute(x, y)
  print(("%s + %s = %s"):format(x, y, result))
end

local loop = aio.get_event_loop()
loop:run_until_complete(print_sum, 1, 2)
loop:close()
