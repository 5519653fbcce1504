-- Seed 002 (Korean notes "Async I/O"), "Event loop usage" (first printer: blocking).
-- call_soon, call_soon_threadsafe, call_later and call_at with a printer that blocks (time.sleep;
-- here the `sleep` command): everything runs one after another, 0.2 s each, timers run late.
local aio = require "aloop"

local loop = aio.get_event_loop()
local t = loop:time()

local function printer(name)
  print(("Started %s at %.1f"):format(name, loop:time() - t))
  os.execute("sleep 0.2")                        -- blocks the whole loop, like time.sleep(0.2)
  print(("Finished %s at %.1f"):format(name, loop:time() - t))
end

local result = loop:call_at(loop:time() + .2, printer, "call_at")
result = loop:call_later(.1, printer, "call_later")
result = loop:call_soon(printer, "call_soon")
result = loop:call_soon_threadsafe(printer, "call_soon_threadsafe")

-- Make sure we stop after a second
result = loop:call_later(1, loop.stop, loop)
loop:run_forever()
