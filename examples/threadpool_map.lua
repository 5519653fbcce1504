-- Seed 004 (asyncio notes), "ThreadPoolExecutor" (executor.map).
-- pool:map runs load_url for every URL in a pool of threads; taking the results waits for all
-- of them, in the order of the list. The downloads are simulated: ?s=N sleeps N tenths of a second.
local aio = require "aloop"

local URLS = { "http://localhost?s=2", "http://localhost?s=4" }

local function load_url(url, timeout)
  local s = tonumber(url:match("s=(%d+)")) / 10
  os.execute("sleep " .. s)                      -- the blocking download
  print(url, "finished!")
  return ("<content of %s>"):format(url)
end

do
  local executor <close> = aio.executor.ThreadPool(5)   -- with ThreadPoolExecutor(max_workers=5)
  local results = {}
  for r in executor:map(load_url, URLS) do results[#results + 1] = r end   -- block for all
  print(table.concat(results, ", "))
end
