-- Seed 000 (asyncio reference digest), "9. Develop with asyncio": detect coroutine objects never
-- scheduled. Calling a coroutine function only makes a coroutine object; if nothing schedules or
-- awaits it, it is reported when collected. Run with ALOOP_DEBUG=1 to see where it was created.
local aio = require "aloop"

local test = aio.async(function()
  print("never scheduled")
end)

local function main()
  test() -- the coroutine object is dropped: nothing runs
end

main()
collectgarbage() -- collected now: the warning is logged (to stderr)
print("done")
