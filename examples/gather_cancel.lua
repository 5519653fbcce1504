-- Seed 004 (Chinese notes on asyncio), "task 中断" (cancelling everything with gather).
-- As cancel_all_tasks.lua, but after the simulated Ctrl+C one gather over all unfinished tasks is
-- cancelled, which cancels each of them; running the loop on it then raises CancelledError.
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
  local tasks = {}
  for task in pairs(aio.all_tasks(loop)) do tasks[#tasks + 1] = task end
  local all = aio.gather(table.unpack(tasks))
  print(all:cancel())
  -- (not in the seed) run until the gather is done: it ends cancelled, and so does every task
  local ok2, err2 = pcall(loop.run_until_complete, loop, all)
  print("gather raised CancelledError:", aio.iserror(err2, aio.CancelledError))
  local n = 0
  for _, task in ipairs(tasks) do
    if task:cancelled() then n = n + 1 end
  end
  print(("%d of %d tasks cancelled"):format(n, #tasks))
end
if ctrl_c then ctrl_c:close() end
loop:close()
