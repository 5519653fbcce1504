-- aio.run(main, ...) (aloop.core.runner): a new loop runs main(...) to completion, then the
-- tasks left are cancelled and awaited and the loop is closed (asyncio.run).
local core = require "aloop.core"
local tasks = require "aloop.core.tasks"

local running_loop = core._running_loop
local unpack, pack = table.unpack, table.pack

local runner = {}

local function cancel_all_tasks(loop)
  local all, any = core.all_tasks(loop), false
  for t in pairs(all) do
    t:cancel()
    any = true
  end
  if not any then return end
  local list = {}
  for t in pairs(all) do list[#list + 1] = t end
  loop:run_until_complete(tasks.gather(list, { return_exceptions = true }))
  for _, t in ipairs(list) do
    if not t:cancelled() and t:exception() ~= nil then
      loop:call_exception_handler {
        message = "unhandled exception during aio.run() shutdown",
        exception = t:exception(), task = t,
      }
    end
  end
end

function runner.run(main, ...)
  if running_loop() then
    error("aloop.run: cannot be called from a running event loop", 2)
  end
  local loop = core.new_event_loop()
  core.set_event_loop(loop)
  local res = pack(pcall(loop.run_until_complete, loop, main, ...))
  local ok2, err2 = pcall(cancel_all_tasks, loop)
  core.set_event_loop(nil)
  loop:close()
  if not res[1] then error(res[2], 0) end
  if not ok2 then error(err2, 0) end
  return unpack(res, 2, res.n)
end

return runner
