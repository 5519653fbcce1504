-- Seed 002 (Korean notes "Async I/O"), "Event loop usage" (second printer: await asyncio.sleep).
-- The same four calls, but each starts a task whose printer sleeps with aio.sleep(0.2), so the
-- printers overlap. (A callback cannot suspend, so printer is a coroutine function run as a task.)
local aio = require "aloop"

local loop = aio.get_event_loop()
local t = loop:time()

local printer = aio.async(function(name)
  print(("Started %s at %.1f"):format(name, loop:time() - t))
  aio.sleep(0.2)
  print(("Finished %s at %.1f"):format(name, loop:time() - t))
end)

local function start(name)
  loop:create_task(printer(name))
end

local result = loop:call_at(loop:time() + .2, start, "call_at")
result = loop:call_later(.1, start, "call_later")
result = loop:call_soon(start, "call_soon")
result = loop:call_soon_threadsafe(start, "call_soon_threadsafe")

-- Make sure we stop after a second
result = loop:call_later(1, loop.stop, loop)
loop:run_forever()
