-- Seed 000 (asyncio wiki digest), "example : coroutine displaying the current date".
-- A coroutine that prints the date every `interval` seconds until `duration` has passed, timed by
-- loop:time(). Usage: display_date.lua [duration=0.5] [interval=0.1] (the seed uses 5.0 and 1.0).
local aio = require "aloop"

local duration = tonumber(arg[1]) or 0.5
local interval = tonumber(arg[2]) or 0.1

local function display_date(loop)
  local end_time = loop:time() + duration
  while true do
    print(os.date("%Y-%m-%d %H:%M:%S"))
    if loop:time() + interval >= end_time then
      break
    end
    aio.sleep(interval)
  end
end

local loop = aio.get_event_loop()
-- Blocking call which returns when the display_date() coroutine is done
loop:run_until_complete(display_date, loop)
loop:close()
