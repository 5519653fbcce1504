-- Seed 004 (Chinese notes on asyncio), "task 中断" (cancelling every task on Ctrl+C).
-- run_until_complete(wait(...)) is interrupted by SIGINT (sent by the script itself after 0.15 s,
-- standing in for Ctrl+C): it raises KeyboardInterrupt, then every unfinished task is cancelled.
local aio = require "aloop"

local SCALE = 0.1                                -- seconds per second of the seed
local interrupt_after = tonumber(arg[1]) or 0.15 -- seconds before the simulated Ctrl+C

local loop = aio.get_event_loop()
local function func(i)
  aio.sleep((i or 2) * SCALE)
  return i
end

-- Ctrl+C: a shell started with io.popen sends SIGINT to its parent, this process.
local ctrl_c
loop:call_later(interrupt_after, function() ctrl_c = io.popen("kill -INT $PPID") end)

local ok, err = pcall(loop.run_until_complete, loop, aio.wait,
                      {aio.coro(func, 1), aio.coro(func, 20), aio.coro(func, 33)})
if not ok then
  if not aio.iserror(err, aio.KeyboardInterrupt) then error(err, 0) end
  -- func(1) is done; left are func(20), func(33) and the task running wait
  local tasks = {}
  for task in pairs(aio.all_tasks(loop)) do
    print("cancel: ", task:cancel(), task)
    tasks[#tasks + 1] = task
  end
  -- (not in the seed) let the cancellations run, then close the loop
  loop:run_until_complete(aio.gather(tasks, {return_exceptions = true}))
end
if ctrl_c then ctrl_c:close() end
loop:close()
