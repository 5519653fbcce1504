-- aloop: the public table (shared/API.md), composed here from the C core (aloop.core: loops,
-- handles, futures, tasks, sleep, errors) and the Lua modules below, each of which requires
-- what it uses. Sub-tables listed in `on_first_use` are required when first read.
local core = require "aloop.core"

local aio = {}

-- The C core's public names; its classes' method tables stay in aloop.core, and core.errno (for
-- the Lua modules) is not part of the public table.
local core_only = { Loop = true, Future = true, Task = true, errno = true }
for k, v in pairs(core) do
  if type(k) == "string" and k:sub(1, 1) ~= "_" and not core_only[k] then aio[k] = v end
end

-- module -> the names it gives the public table
local parts = {
  ["aloop.core.coro"] = { "coro", "async", "iscoroutine", "await" },
  ["aloop.core.loop"] = { "create_task", "ensure_future" },
  ["aloop.core.runner"] = { "run" },
  ["aloop.core.tasks"] = { "FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED", "wait",
    "wait_for", "gather", "as_completed", "shield" },
  ["aloop.core.timeouts"] = { "timeout", "timeout_at" },
  ["aloop.core.taskgroup"] = { "TaskGroup" },
  ["aloop.sync.locks"] = { "Lock", "Event", "Condition", "Semaphore", "BoundedSemaphore",
    "Barrier" },
  ["aloop.sync.queues"] = { "Queue", "LifoQueue", "PriorityQueue" },
  ["aloop.net.connections"] = {},
  ["aloop.net.streams"] = { "StreamReader", "StreamWriter", "open_connection",
    "open_unix_connection", "start_server", "start_unix_server" },
  ["aloop.io.subprocess"] = { "subprocess", "Process", "create_subprocess_exec",
    "create_subprocess_shell" },
  ["aloop.threads.executor"] = { "executor", "wrap_future", "to_thread" },
  ["aloop.threads.thread"] = { "thread", "run_coroutine_threadsafe" },
  ["aloop.workers.worker"] = { "worker" },
}
for name, names in pairs(parts) do
  local m = require(name)
  for _, k in ipairs(names) do
    if m[k] == nil then error("aloop: " .. name .. " has no " .. k) end
    aio[k] = m[k]
  end
end

-- aio.<key> -> the module required on first read (e.g. http = "aloop.http").
local on_first_use = { redis = "aloop.redis", http = "aloop.http", json = "aloop.json" }

return setmetatable(aio, {
  __index = function(t, k)
    local name = on_first_use[k]
    if name == nil then return nil end
    local m = require(name)
    rawset(t, k, m)
    return m
  end,
})
