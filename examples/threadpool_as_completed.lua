-- Seed 004 (asyncio notes), "ThreadPoolExecutor" (submit + as_completed).
-- Each submit returns a concurrent future; as_completed yields them as they finish, so the
-- short job is handled first. Delays are the seed's, in tenths of a second.
local aio = require "aloop"

local function load_url(url, timeout)
  os.execute("sleep " .. timeout)
  local msg = ("load %s successful"):format(url)
  print(msg)
  return msg .. (",timeout=%s"):format(timeout)
end

do
  local pool <close> = aio.executor.ThreadPool(2)
  local urls = { { "url1", 0.4 }, { "url2", 0.1 } }
  local futures = {}
  for _, args in ipairs(urls) do futures[pool:submit(load_url, args[1], args[2])] = args[1] end
  for future in aio.executor.as_completed(futures) do   -- whichever finishes first
    local url = futures[future]
    print("url:", url)
    local data = future:result()
    print("data:", data)
  end
end
