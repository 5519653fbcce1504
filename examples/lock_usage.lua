-- Seed 000 (asyncio wiki digest), "7. Synchronization primitives" > "Locks": both usages.
-- `yield from lock` + try/finally release becomes lock:acquire() + pcall + lock:release();
-- `with (yield from lock)` becomes a to-be-closed guard: local _ <close> = lock:acquire().
local aio = require "aloop"

local lock = aio.Lock()
local counter = 0

-- Usage: acquire, then release in every case (the try/finally of the sample).
local function add_explicit(name)
  lock:acquire()
  local ok, err = pcall(function()
    local seen = counter
    aio.sleep(0.01)                    -- other tasks run meanwhile, but cannot get the lock
    counter = seen + 1
    print(name .. ": counter = " .. counter)
  end)
  lock:release()
  if not ok then error(err, 0) end
end

-- Context manager usage: the guard releases the lock when the scope ends, also on errors.
local function add_guarded(name)
  local _ <close> = lock:acquire()
  local seen = counter
  aio.sleep(0.01)
  counter = seen + 1
  print(name .. ": counter = " .. counter)
end

aio.run(function()
  aio.gather(aio.coro(add_explicit, "explicit 1"), aio.coro(add_guarded, "guarded 1"),
    aio.coro(add_explicit, "explicit 2"), aio.coro(add_guarded, "guarded 2"))
  print("final counter = " .. counter .. ", locked: " .. tostring(lock:locked()))
end)
