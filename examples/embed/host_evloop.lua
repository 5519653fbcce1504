-- Run by examples/embed/host_evloop.c, a host whose own libev loop drives aloop one iteration
-- at a time. `host.ticks()` counts the host's own ev_timer; `host.later(ms)` returns a Future
-- that a host OS thread completes. aloop's timers, tasks and thread-safe wake-ups all work
-- while the host, not aloop, runs ev_run.
local aio = require "aloop"
local host = ...

local loop = aio.get_running_loop()
local t0 = loop:time()
aio.sleep(0.03)
print(("lua: slept %s; host timer ticked meanwhile: %s"):format(
  tostring(loop:time() - t0 >= 0.03), tostring(host.ticks() > 0)))

local a, b = aio.create_task(function() return aio.sleep(0.01, "task a") end),
  aio.create_task(function() return aio.sleep(0.005, "task b") end)
print("lua: " .. table.concat(aio.gather(a, b), ", "))

print("lua: " .. host.later(15):await())
return "script done"
