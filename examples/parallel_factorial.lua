-- Seed 000 (asyncio wiki digest), "example : parallel execution of tasks".
-- Three factorial tasks take turns on one loop, each sleeping between steps; asyncio.wait(tasks)
-- becomes loop:run_until_complete(aio.wait, tasks).
local aio = require "aloop"

local function factorial(name, number)
  local f = 1
  for i = 2, number do
    print(("Task %s: Compute factorial(%s)..."):format(name, i))
    aio.sleep(0.1)                               -- the seed sleeps 1 s
    f = f * i
  end
  print(("Task %s: factorial(%s) = %s"):format(name, number, f))
end

local loop = aio.get_event_loop()
local tasks = {
  aio.ensure_future(factorial, "A", 2),
  aio.ensure_future(factorial, "B", 3),
  aio.ensure_future(factorial, "C", 4),
}
loop:run_until_complete(aio.wait, tasks)
loop:close()
