-- Seed 004 (Chinese notes on asyncio), "task 并行" (tasks in parallel with wait).
-- aio.wait returns two sets (tables keyed by task): done and pending; results come out of `done`
-- in no fixed order. A second wait with a timeout leaves the slow task in `pending`.
local aio = require "aloop"

local SCALE = 0.1                                -- seconds per second of the seed

local function func(i)
  i = i or 2
  print("sleep: ", i)
  aio.sleep(i * SCALE)
  return i
end

local function count(set)
  local n = 0
  for _ in pairs(set) do n = n + 1 end
  return n
end

local loop = aio.get_event_loop()

-- block for all tasks
local dones, pendings = loop:run_until_complete(aio.wait, {
  aio.ensure_future(func, 1),
  aio.ensure_future(func, 3),
})
for task in pairs(dones) do
  print(task:result())                           -- order not fixed; pendings is empty
end
print("pending: ", count(pendings))

-- wait also wraps coroutine objects in tasks; with a timeout, what is not done stays pending
dones, pendings = loop:run_until_complete(aio.wait, {aio.coro(func, 1), aio.coro(func, 3)},
                                          {timeout = 2 * SCALE})
print("done: ", count(dones), "pending: ", count(pendings))
local rest = {}
for task in pairs(pendings) do rest[#rest + 1] = task end
loop:run_until_complete(aio.wait, rest)          -- let the slow one finish before closing
print("late result: ", rest[1]:result())
loop:close()
