-- Run by examples/embed/host_thread.c as a task on a loop the host made. `host.fetch(key,
-- ms)` is a host C function: it returns a Future at once and a host OS thread completes it
-- `ms` milliseconds later (for key "missing" with an error). Other tasks keep running meanwhile.
local aio = require "aloop"
local host = ...

local ticks = 0
local ticker = aio.create_task(function()
  while true do
    aio.sleep(0.002)
    ticks = ticks + 1
  end
end)

local slow, fast = host.fetch("alpha", 60), host.fetch("beta", 20)
local results = aio.gather(slow, fast) -- suspends this task; the ticker goes on
print("fetched: " .. results[1] .. ", " .. results[2])
print("the ticker ran meanwhile: " .. tostring(ticks >= 5))

local ok, err = pcall(aio.await, host.fetch("missing", 5))
print("missing: " .. tostring(ok) .. ", " .. tostring(err))

-- A fetch that takes too long: wait_for cancels the future; the host thread's late answer
-- is dropped quietly.
ok, err = pcall(aio.wait_for, host.fetch("gamma", 200), 0.01)
print("timed out: " .. tostring(aio.iserror(err, aio.TimeoutError)))

ticker:cancel()
return "script done"
