-- Seed 004, "task 中断" with subprocesses: tasks each wait for a long-running child; Ctrl+C
-- (SIGINT) makes run_until_complete raise KeyboardInterrupt, every task is cancelled, and each
-- task's to-be-closed Process kills its child on the way out. Prints "ready" once the children
-- run (the spec then sends SIGINT).
local aio = require "aloop"

local loop = aio.get_event_loop()
local started, procs = 0, {}

local function worker(i)
  local proc <close> = aio.create_subprocess_exec("sleep", "30")
  procs[i] = proc
  started = started + 1
  if started == 3 then print("ready") io.stdout:flush() end
  local ok, err = pcall(proc.wait, proc)
  if not ok then
    print(("worker %d cancelled"):format(i))
    error(err, 0) -- leaving the scope closes proc: the child is killed and reaped
  end
end

local tasks = {}
for i = 1, 3 do tasks[i] = loop:create_task(worker, i) end
local all = aio.gather(tasks, {return_exceptions = true})
local ok, err = pcall(loop.run_until_complete, loop, all)
if not ok then
  if not aio.iserror(err, aio.KeyboardInterrupt) then error(err, 0) end
  print("KeyboardInterrupt: cancelling all tasks")
  for task in pairs(aio.all_tasks(loop)) do task:cancel() end
  loop:run_until_complete(all) -- the workers' cleanup runs
  for i, t in ipairs(tasks) do
    print(("task %d cancelled: %s, child returncode %s"):format(i, t:cancelled(), procs[i].returncode))
  end
end
loop:close()
print("clean exit")
