-- Seed 000 (asyncio wiki digest), "example : future with run_forever()".
-- The same Future, but the loop runs forever and a done callback prints the result and stops it;
-- try/finally becomes pcall + close + rethrow.
local aio = require "aloop"

local loop

local function slow_operation(future)
  aio.sleep(0.1)                                 -- the seed sleeps 1 s
  future:set_result("Future is done!")
end

local function got_result(future)
  print(future:result())
  loop:stop()
end

loop = aio.get_event_loop()
local future = loop:create_future()
aio.ensure_future(slow_operation, future)
future:add_done_callback(got_result)
local ok, err = pcall(loop.run_forever, loop)
loop:close()                                     -- finally
if not ok then error(err, 0) end
