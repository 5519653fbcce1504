-- Seed 004 (asyncio notes), "停止event loop": a loop runs in another thread while the main
-- thread pops task durations from a Redis list (RPOP "queue", sleeping a little when it is
-- empty) and hands each to that loop with run_coroutine_threadsafe. Here a producer task in the
-- same script fills the queue, then pushes "stop". Usage: [redis://host:port/db]
local aio = require "aloop"
local redis = require "aloop.redis"

local url = arg[1] or "redis://127.0.0.1:6379/0"

local function do_some_work(x)
  local aio = require "aloop"                    -- runs on the other thread's Lua state
  print(("Waiting %s"):format(x))
  aio.sleep(x)
  print(("Finished more work %s"):format(x))
end

local new_loop = aio.thread.start_loop()
local futures = {}

aio.run(function()
  local r <close> = redis.connect(url)
  r:del("queue")
  aio.create_task(function()                     -- the producer
    for _, seconds in ipairs { "0.3", "0.1", "0.2", "stop" } do r:lpush("queue", seconds) end
  end)
  while true do
    local task = r:rpop("queue")
    if not task then
      aio.sleep(0.05)
    elseif task == "stop" then
      break
    else
      futures[#futures + 1] = aio.run_coroutine_threadsafe(aio.coro(do_some_work, tonumber(task)), new_loop)
    end
  end
end)

for _, f in ipairs(futures) do f:result() end     -- concurrent futures: block until done
new_loop:stop()
new_loop:join()
print(("%d tasks done"):format(#futures))
