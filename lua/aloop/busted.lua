-- aloop.busted: async test bodies for busted.
--   local async = require("aloop.busted").async
--   it("sleeps", async(function(loop) aio.sleep(0.01) end))
-- The body runs as a task on a fresh loop (set as the current loop, and passed as its first
-- argument), with a timeout. The test fails, with the task's own error and traceback, when the
-- body fails or times out, when it leaves tasks running or timers/fd watchers scheduled on the
-- loop, or when something was reported to the loop's exception handler (an error nobody
-- retrieved). The loop is closed afterwards in every case.
-- Works from stock lua5.4 + busted (`require "aloop.busted"` finds aloop.so on package.cpath)
-- and under `busted --lua=aloop`.
local aio = require "aloop"
local core = require "aloop.core"

local M = {
  timeout = 10,  -- seconds, default for every body (opts.timeout overrides)
  reports = {},  -- the exception handler's reports (ctx tables) of the last run
}

local function describe_error(err)
  local msg = tostring(err)
  if type(err) == "table" and type(err.traceback) == "string" and not msg:find(err.traceback, 1, true) then
    msg = msg .. "\n" .. err.traceback
  end
  return msg
end

local function plural(n, what) return n .. " " .. what .. (n == 1 and "" or "s") end

-- Cancels the tasks still on the loop and lets them finish; returns their descriptions.
local function cancel_leftovers(loop)
  local left = {}
  for t in pairs(aio.all_tasks(loop)) do
    left[#left + 1] = t
    t:cancel()
  end
  if #left > 0 then
    pcall(loop.run_until_complete, loop, aio.gather(left, { return_exceptions = true }))
  end
  for i, t in ipairs(left) do left[i] = tostring(t) end
  return left
end

-- M.run(fn, opts, ...): runs fn(loop, ...) as a task on a fresh loop; returns its results or
-- raises a test failure. opts: timeout (seconds), allow_reports (do not fail on reports; read
-- them in M.reports), allow_pending (do not fail on leftover timers or watchers).
function M.run(fn, opts, ...)
  opts = opts or {}
  local timeout = opts.timeout or M.timeout
  if core._running_loop() then error("aloop.busted: called inside a running loop", 2) end
  local loop = aio.new_event_loop()
  aio.set_event_loop(loop)
  local reports = {}
  M.reports = reports
  loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
  local main = loop:create_task(fn, loop, ...)
  local timed_out = false
  local timer = loop:call_later(timeout, function()
    timed_out = true
    main:cancel("aloop.busted: timeout")
  end)
  local res = table.pack(pcall(loop.run_until_complete, loop, main))
  timer:cancel()
  local left = cancel_leftovers(loop)
  local _, timers, watchers = core._loop_pending(loop)
  aio.set_event_loop(nil)
  loop:close()

  if timed_out then
    error(("async test timed out after %g s (aloop.busted; pass {timeout = s} to change)"):format(timeout), 0)
  end
  if not res[1] then error(describe_error(res[2]), 0) end
  if #left > 0 then
    error("async test left " .. plural(#left, "task") .. " running (cancelled now): " ..
      table.concat(left, ", "), 0)
  end
  if not opts.allow_pending and (timers > 0 or watchers > 0) then
    error(("async test left the loop busy: %s and %s scheduled (cancel them before returning)")
      :format(plural(timers, "timer"), plural(watchers, "fd watcher")), 0)
  end
  if not opts.allow_reports and #reports > 0 then
    local msgs = {}
    for i, ctx in ipairs(reports) do
      msgs[i] = tostring(ctx.message) .. (ctx.exception ~= nil and (": " .. describe_error(ctx.exception)) or "")
    end
    error("async test reported to the loop's exception handler:\n" .. table.concat(msgs, "\n"), 0)
  end
  return table.unpack(res, 2, res.n)
end

-- async(fn [, opts]): a busted test body that runs fn as a task (see M.run).
function M.async(fn, opts)
  if type(fn) ~= "function" then error("aloop.busted.async: a function expected", 2) end
  return function() return M.run(fn, opts) end
end

-- The module is itself `async`: `local async = require "aloop.busted"` and
-- `local async = require("aloop.busted").async` both work (API.md §11).
return setmetatable(M, { __call = function(_, fn, opts) return M.async(fn, opts) end })
