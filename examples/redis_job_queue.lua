-- A job queue on a Redis list: three workers wait in BLPOP, each on a connection of its own
-- (r:acquire(): a blocking command would stall every other task on the shared connection),
-- while a producer pushes jobs with RPUSH and then one "stop" per worker. Results go to another
-- list; the totals are printed in order at the end. Usage: [redis://host:port/db]
local aio = require "aloop"
local redis = require "aloop.redis"

local url = arg[1] or "redis://127.0.0.1:6379/0"
local WORKERS, JOBS = 3, 9

local function worker(r, id)
  local c <close> = r:acquire()
  local done = 0
  while true do
    local _, job = table.unpack(c:blpop("jobs", 5))   -- {list, value}
    if job == "stop" then break end
    local n = tonumber(job)
    c:rpush("results", ("%d squared is %d"):format(n, n * n))
    done = done + 1
  end
  return done
end

aio.run(function()
  local r <close> = redis.connect(url, { pool_size = WORKERS + 1 })
  r:del("jobs", "results")
  local workers = {}
  for id = 1, WORKERS do workers[id] = aio.create_task(worker, r, id) end
  for job = 1, JOBS do r:rpush("jobs", job) end
  for _ = 1, WORKERS do r:rpush("jobs", "stop") end
  local total = 0
  for _, n in ipairs(aio.gather(workers)) do total = total + n end
  local results = r:lrange("results", 0, -1)
  table.sort(results, function(a, b) return tonumber(a:match("%d+")) < tonumber(b:match("%d+")) end)
  for _, line in ipairs(results) do print(line) end
  print(("%d workers handled %d jobs"):format(WORKERS, total))
end)
