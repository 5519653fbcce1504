-- Seed 000 (asyncio wiki digest), "8. Queues": Queue, PriorityQueue, LifoQueue. The same items go
-- into each kind of queue and come back out: first in first out, smallest first (tables by
-- their first element, ties in insertion order), last in first out.
local aio = require "aloop"

local items = { { 3, "write report" }, { 1, "fix bug" }, { 2, "review" }, { 1, "deploy" } }

local function show(name, q)
  for _, item in ipairs(items) do q:put(item) end
  local out = {}
  while not q:empty() do
    local item = q:get()
    out[#out + 1] = item[1] .. ":" .. item[2]
  end
  print(name .. ": " .. table.concat(out, ", "))
end

aio.run(function()
  show("Queue", aio.Queue())
  show("PriorityQueue", aio.PriorityQueue())
  show("LifoQueue", aio.LifoQueue())
end)
