-- Seed 004 (asyncio notes), "ThreadPoolExecutor" ("executor 上下文结束是阻塞的": leaving the
-- `with` block waits). A to-be-closed pool waits for the submitted jobs when its scope ends.
-- Delays are the seed's, in tenths of a second.
local aio = require "aloop"

local function load_url(url, timeout)
  os.execute("sleep " .. timeout)
  print(("load %s successful, timeout=%s"):format(url, timeout))
end

do
  local pool <close> = aio.executor.ThreadPool(2)
  for _, args in ipairs({ { "url1", 0.4 }, { "url2", 0.1 } }) do
    pool:submit(load_url, args[1], args[2])
  end
end                                              -- waits here, like the end of `with`
print("All tasks has been finished")
