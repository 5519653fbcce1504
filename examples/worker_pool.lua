-- Seed 000 (asyncio wiki digest), "8. Queues": the most common real use of a queue, a pool of N
-- workers draining a bounded queue of jobs. The producer waits while the queue is full
-- (back-pressure), join() waits until every job is done, then the workers are cancelled.
-- usage: aloop examples/worker_pool.lua [workers] [jobs]
local aio = require "aloop"

local nworkers, njobs = tonumber(arg and arg[1]) or 3, tonumber(arg and arg[2]) or 10

local function worker(name, q, results)
  while true do
    local job = q:get()
    aio.sleep(0.001 * (job % 3))       -- some jobs take longer than others
    results[#results + 1] = job * job
    q:task_done()
  end
end

aio.run(function()
  local q = aio.Queue(nworkers)        -- at most one waiting job per worker
  local results = {}
  local workers = {}
  for i = 1, nworkers do workers[i] = aio.create_task(worker, "worker " .. i, q, results) end
  for job = 1, njobs do q:put(job) end -- suspends while the queue is full
  q:join()
  for _, w in ipairs(workers) do w:cancel() end
  aio.gather(workers, { return_exceptions = true })
  table.sort(results)
  local sum = 0
  for _, r in ipairs(results) do sum = sum + r end
  print(("%d workers did %d jobs: %s"):format(nworkers, #results, table.concat(results, " ")))
  print("sum of squares = " .. sum)
end)
