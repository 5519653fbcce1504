-- Seed 004 (asyncio notes), "ProcessPoolExecutor" (also without asyncio: multiprocessing).
-- multiprocessing.Pool(4) and multiprocessing.pool.ThreadPool(4): apply_async(...):get() and
-- map, which block. Here ProcessPool(4) and ThreadPool(4) with the same calls.
local aio = require "aloop"

local function func(url, timeout) return ("fetched %s (timeout %d)"):format(url, timeout) end
local function exp(x) return math.exp(x) end    -- math.exp itself is C: it cannot be sent
local range = {}
for i = 1, 10 do range[i] = i end

local function show(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = ("%.2f"):format(v) end
  return table.concat(out, " ")
end

do
  local pool <close> = aio.executor.ProcessPool(4)
  print(pool:apply_async(func, { "http://a", 60 }):get())   -- get blocks
  print(show(pool:map_list(exp, range)))                     -- map blocks too
end

do
  local pool <close> = aio.executor.ThreadPool(4)
  print(pool:apply_async(func, { "http://b", 60 }):get())
  print(show(pool:map_list(exp, range)))
end
