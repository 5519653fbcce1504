-- aloop.workers.worker: this process's side of `aloop --workers N` (the supervisor is
-- src/supervisor.c, the C half src/workers/worker.c). aio.worker.id (1..N) and .count, nil when
-- not supervised. Under a supervisor: create_server's and create_unix_server's listening
-- sockets come from it (bound once, shared by every worker); the first loop that runs tells it
-- the worker is ready; every running loop watches the control socket (the supervisor's death
-- stops the worker as SIGTERM does) and, unless the script handles SIGTERM itself, SIGTERM
-- stops the worker gracefully: its servers stop accepting, the connections they accepted get
-- the grace period to finish (a server with a _graceful_stop(grace) function, http.serve's,
-- does that itself: its idle keep-alive connections close at once), then the servers close
-- and what the loop runs ends (run_until_complete's future, so aio.run's main, is cancelled
-- and returns nothing; run_forever stops). Not supervised: supervise() starts the supervisor.
local core = require "aloop.core"
local tasks = require "aloop.core.tasks"

local info = core._worker()
local worker = { worker = { id = info and info.id, count = info and info.count } }

if not info then
  function worker.shared_socket() return nil end
  function worker.add_server() end
  -- supervise(n, grace): this script again as n workers under the supervisor (app:run{workers
  -- = n}): an exec that does not return; nil and why not.
  function worker.supervise(n, grace) return core._worker_supervise(n, grace) end
  return worker
end

worker.grace = info.grace -- seconds the supervisor waits for a stopping worker

local Loop, isfuture = core.Loop, core.isfuture
local weak = { __mode = "k" }
local servers = setmetatable({}, weak) -- every Server of this process
local asked = {} -- "family address" -> how many sockets this worker asked for there
local mains = setmetatable({}, weak) -- loop -> the future its run_until_complete waits on
local stopped = setmetatable({}, weak) -- futures the graceful stop cancelled
local watched = setmetatable({}, weak) -- loops watching the control socket
local ready_sent, stopping = false, false

-- The supervisor's socket for create_server's (or create_unix_server's) address ai (nil with
-- reuse_port: then each worker binds its own with SO_REUSEPORT). The nth socket a worker asks
-- for at an address is the nth the supervisor bound there, so port 0 means the same port in
-- every worker.
function worker.shared_socket(ai, opts)
  if opts.reuse_port then return nil end
  local key = ai.family .. " " .. tostring(ai.addr)
  local nth = asked[key] or 0
  asked[key] = nth + 1
  return core._worker_listen(ai.family, ai.addr, opts.backlog or 100, nth,
    opts.reuse_address ~= false)
end

function worker.add_server(server) servers[server] = true end

-- Stops accepting on the loop's servers (their sockets stay open: serve_forever goes on);
-- returns them.
local function stop_accepting(loop)
  local mine = {}
  for s in pairs(servers) do
    if s._loop == loop and not s._closed then
      mine[#mine + 1] = s
      s._serving = false
      for _, ls in ipairs(s._listeners) do ls:pause() end
    end
  end
  return mine
end

local function graceful_stop(loop)
  if stopping then return end
  stopping = true
  loop:create_task(function()
    local mine = stop_accepting(loop)
    local closing = {} -- what ends when the servers' connections are done
    for _, s in ipairs(mine) do
      if s._graceful_stop then -- a server that knows its idle connections (http.serve's)
        closing[#closing + 1] = loop:create_task(s._graceful_stop, info.grace)
      else -- the connections the server accepted (Server._clients)
        for tr in pairs(s._clients) do closing[#closing + 1] = tr:_wait_closed() end
      end
    end
    if #closing > 0 then tasks.wait(closing, { timeout = info.grace }) end
    for _, s in ipairs(mine) do
      s:close()
      s:abort_clients() -- still open after the grace period
    end
    core.sleep(0) -- a main waiting in serve_forever or wait_closed returns now
    local fut = mains[loop]
    if fut == nil then
      loop:stop()
    elseif not fut:done() then
      stopped[fut] = true
      fut:cancel()
    end
  end)
end

local function send_ready()
  if ready_sent then return end
  ready_sent = true
  core._worker_ready()
end

-- A loop about to run: the control socket watched, the default SIGTERM behaviour, readiness
-- announced once the first iteration ran (the main task's first step made its servers).
local function prepare(loop)
  if watched[loop] then return end
  watched[loop] = true
  loop:add_reader(info.fd, function()
    if core._worker_orphaned() then
      loop:remove_reader(info.fd)
      core._worker_terminate_self()
    end
  end)
  if not loop:_signal_handled("SIGTERM") then
    loop:add_signal_handler("SIGTERM", graceful_stop, loop)
  end
  if not ready_sent then loop:call_soon(send_ready) end
end

local run_forever, run_until_complete = Loop.run_forever, Loop.run_until_complete

function Loop:run_forever()
  if not self:is_closed() then prepare(self) end
  return run_forever(self)
end

function Loop:run_until_complete(aw, ...)
  if self:is_closed() or self:is_running() then return run_until_complete(self, aw, ...) end
  local fut = isfuture(aw) and aw or self:create_task(aw, ...)
  mains[self] = fut
  local res = table.pack(pcall(run_until_complete, self, fut))
  mains[self] = nil
  if res[1] then return table.unpack(res, 2, res.n) end
  if stopped[fut] then return end
  error(res[2], 0)
end

return worker
