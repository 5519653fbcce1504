-- Task combinators (API.md §3): wait, wait_for, gather, as_completed, shield. They are glue
-- over the C futures: done callbacks plus one waiter future the calling task suspends on.
-- gather and shield suspend when called from a task and return a future otherwise.
local core = require "aloop.core"
local coro = require "aloop.core.coro"
local loop_glue = require "aloop.core.loop"

local tasks = {}
tasks.FIRST_COMPLETED = "FIRST_COMPLETED"
tasks.FIRST_EXCEPTION = "FIRST_EXCEPTION"
tasks.ALL_COMPLETED = "ALL_COMPLETED"

local isfuture, await_future = core.isfuture, core.await_future
local ensure_future, default_loop = loop_glue.ensure_future, loop_glue.default_loop
local TimeoutError = core.TimeoutError
local iscoroutine = coro.iscoroutine

local function in_task() return core.current_task() ~= nil end

local function need_task(what)
  if not in_task() then
    error(core._not_in_task(what), 3)
  end
end

-- A list of awaitables from a list or a set (table keyed by futures).
local function to_list(aws, what)
  if type(aws) ~= "table" or isfuture(aws) or iscoroutine(aws) then
    error(("aloop.%s: a list or set of awaitables expected"):format(what), 3)
  end
  local list = {}
  if aws[1] ~= nil then
    for i = 1, #aws do list[i] = aws[i] end
  else
    for k, v in pairs(aws) do
      if v == true then list[#list + 1] = k end
    end
  end
  return list
end

-- The future for an awaitable on loop: a future stays itself, a coroutine object or a plain
-- function (called with no arguments) becomes a task. A future of another loop would never wake
-- this one: refused at once (`what` names the caller). With `made` (awaitable -> future), the
-- same awaitable given twice gets the same future (a coroutine object runs once).
local function future_of(aw, loop, what, made)
  if isfuture(aw) then
    if aw:get_loop() ~= loop then
      error(("aloop.%s: the future belongs to a different loop"):format(what), 3)
    end
    return aw
  end
  local f = made and made[aw]
  if f then return f end
  f = loop:create_task(aw)
  if made then made[aw] = f end
  return f
end

-- The list without repeats, in first-seen order (asyncio's combinators take sets).
local function unique(list)
  local seen, out = {}, {}
  for _, aw in ipairs(list) do
    if not seen[aw] then
      seen[aw] = true
      out[#out + 1] = aw
    end
  end
  return out
end

local function wake(w, ...)
  if not w:done() then w:set_result(...) end
end

-- The CancelledError a cancelled future raises (it carries the cancel message).
local function cancelled_error(f)
  local _, err = pcall(f.result, f)
  return err
end

---------------------------------------------------------------------------------------
-- wait(aws, {timeout=, return_when=}) -> done, pending (sets)

function tasks.wait(aws, opts)
  need_task("wait")
  local list = to_list(aws, "wait")
  if #list == 0 then error("aloop.wait: the set of awaitables is empty", 2) end
  opts = opts or {}
  local timeout, when = opts.timeout, opts.return_when or tasks.ALL_COMPLETED
  if when ~= tasks.ALL_COMPLETED and when ~= tasks.FIRST_COMPLETED and when ~= tasks.FIRST_EXCEPTION then
    error("aloop.wait: invalid return_when value: " .. tostring(when), 2)
  end
  if timeout ~= nil and type(timeout) ~= "number" then
    error("aloop.wait: timeout must be a number or nil", 2)
  end
  local loop = core.get_running_loop()
  local fs = {}
  for i, aw in ipairs(unique(list)) do fs[i] = future_of(aw, loop, "wait") end

  local function satisfied()
    local ndone = 0
    for _, f in ipairs(fs) do
      if f:done() then
        ndone = ndone + 1
        if when == tasks.FIRST_COMPLETED then return true end
        if when == tasks.FIRST_EXCEPTION and not f:cancelled() and f:exception() ~= nil then
          return true
        end
      end
    end
    return ndone == #fs
  end

  if not satisfied() and timeout ~= 0 then
    local waiter = loop:create_future()
    local counter = 0
    for _, f in ipairs(fs) do
      if not f:done() then counter = counter + 1 end
    end
    local function on_done(f)
      counter = counter - 1
      if counter <= 0 or when == tasks.FIRST_COMPLETED
        or (when == tasks.FIRST_EXCEPTION and not f:cancelled() and f:exception() ~= nil) then
        wake(waiter)
      end
    end
    for _, f in ipairs(fs) do
      if not f:done() then f:add_done_callback(on_done) end
    end
    local th = timeout and loop:call_later(timeout, wake, waiter)
    local ok, err = pcall(await_future, waiter)
    if th then th:cancel() end
    for _, f in ipairs(fs) do f:remove_done_callback(on_done) end
    if not ok then error(err, 0) end
  end
  local done, pending = {}, {}
  for _, f in ipairs(fs) do
    if f:done() then done[f] = true else pending[f] = true end
  end
  return done, pending
end

---------------------------------------------------------------------------------------
-- wait_for(aw, timeout): the results, or TimeoutError after cancelling aw and waiting for it

-- Cancels fut and waits until it is done (it may clean up first).
local function cancel_and_wait(loop, fut)
  local w = loop:create_future()
  local function cb() wake(w) end
  fut:add_done_callback(cb)
  fut:cancel()
  local ok, err = pcall(await_future, w)
  fut:remove_done_callback(cb)
  if not ok then error(err, 0) end
end

-- wait_for(aw, timeout) or wait_for(fn, timeout, ...): fn(...) runs as the awaited task.
function tasks.wait_for(aw, timeout, ...)
  need_task("wait_for")
  if timeout ~= nil and type(timeout) ~= "number" then
    error("aloop.wait_for: timeout must be a number or nil", 2)
  end
  if not isfuture(aw) and not iscoroutine(aw) and not coro.callable(aw) then
    error(("aloop.wait_for: a coroutine object, future or function expected, got %s (the "
      .. "call in the argument already ran; pass the function and its arguments instead: "
      .. "aio.wait_for(reader.readline, 1, reader))"):format(type(aw)), 2)
  end
  local loop = core.get_running_loop()
  local fut
  if select("#", ...) == 0 then
    fut = future_of(aw, loop, "wait_for")
  elseif isfuture(aw) or iscoroutine(aw) then
    error("aloop.wait_for: arguments after the timeout are for a function, not a "
      .. (iscoroutine(aw) and "coroutine object" or "future"), 2)
  else
    fut = loop:create_task(aw, ...)
  end
  if timeout == nil then return await_future(fut) end
  if timeout <= 0 then
    if fut:done() then return fut:result() end
    cancel_and_wait(loop, fut)
    if fut:cancelled() then error(TimeoutError(), 0) end
    return fut:result()
  end
  local waiter = loop:create_future()
  local function cb() wake(waiter) end
  fut:add_done_callback(cb)
  local th = loop:call_later(timeout, wake, waiter)
  local ok, err = pcall(await_future, waiter)
  th:cancel()
  fut:remove_done_callback(cb)
  if not ok then -- we were cancelled: cancel the inner one too, then propagate
    cancel_and_wait(loop, fut)
    error(err, 0)
  end
  if fut:done() then return fut:result() end
  cancel_and_wait(loop, fut)
  if fut:cancelled() then error(TimeoutError(), 0) end
  return fut:result() -- the inner one suppressed the cancellation
end

---------------------------------------------------------------------------------------
-- gather(aw1, aw2, ...) / gather({aws}, {return_exceptions=}) -> {results in order, n = count}

-- The gathering future: done when every child is; cancelling it cancels the children (a
-- cancel hook), and it then ends cancelled once they have finished.
local function gathering(loop, children, return_exceptions)
  local outer = loop:create_future()
  local n, finished, cancel_requested, cancel_msg = #children, 0, false, nil
  local function finish()
    if cancel_requested then return core._cancel_now(outer, cancel_msg) end
    local results = { n = n }
    for i, c in ipairs(children) do
      if c:cancelled() then
        results[i] = cancelled_error(c)
      elseif c:exception() ~= nil then
        results[i] = c:exception()
      else
        results[i] = (c:result())
      end
    end
    outer:set_result(results)
  end
  local function on_done(c)
    finished = finished + 1
    if outer:done() then
      if not c:cancelled() then c:exception() end -- retrieved: nobody else will
      return
    end
    if not return_exceptions then
      if c:cancelled() then return outer:set_exception(cancelled_error(c)) end
      if c:exception() ~= nil then return outer:set_exception(c:exception()) end
    end
    if finished == n then finish() end
  end
  if n == 0 then
    outer:set_result({ n = 0 })
    return outer
  end
  core._set_cancel_hook(outer, function(_, msg)
    local any = false
    for _, c in ipairs(children) do
      if c:cancel(msg) then any = true end
    end
    if any then cancel_requested, cancel_msg = true, msg end
    return any
  end)
  for _, c in ipairs(children) do c:add_done_callback(on_done) end
  return outer
end

function tasks.gather(...)
  local first = ...
  local list, opts
  if type(first) == "table" and not isfuture(first) and not iscoroutine(first) then
    list, opts = to_list(first, "gather"), select(2, ...) or {}
  else
    list, opts = table.pack(...), {}
    list.n = nil
  end
  local loop = default_loop()
  local children, made = {}, {}
  if isfuture(list[1]) then loop = list[1]:get_loop() end -- the children's loop
  for i, aw in ipairs(list) do children[i] = future_of(aw, loop, "gather", made) end
  local outer = gathering(loop, children, opts.return_exceptions and true or false)
  if in_task() then return await_future(outer) end
  return outer
end

---------------------------------------------------------------------------------------
-- as_completed(aws, {timeout=}): for f in aio.as_completed(aws) do ... f:result() ... end

function tasks.as_completed(aws, opts)
  local list = unique(to_list(aws, "as_completed"))
  opts = opts or {}
  local loop = default_loop()
  local done_q, head, tail, remaining = {}, 1, 0, #list
  local waiter, timed_out = nil, false
  local function on_done(f)
    tail = tail + 1
    done_q[tail] = f
    if waiter then wake(waiter) end
  end
  local fs = {}
  for i, aw in ipairs(list) do
    fs[i] = future_of(aw, loop, "as_completed")
    fs[i]:add_done_callback(on_done)
  end
  local th
  if opts.timeout then
    th = loop:call_later(opts.timeout, function()
      timed_out = true
      if waiter then wake(waiter) end
    end)
  end
  return function()
    if remaining == 0 then
      if th then th:cancel() end
      return nil
    end
    need_task("as_completed")
    while done_q[head] == nil do
      if timed_out then
        for _, f in ipairs(fs) do f:remove_done_callback(on_done) end
        error(TimeoutError(), 0)
      end
      waiter = loop:create_future()
      await_future(waiter)
      waiter = nil
    end
    local f = done_q[head]
    done_q[head] = nil
    head = head + 1
    remaining = remaining - 1
    if remaining == 0 and th then th:cancel() end
    return f
  end
end

---------------------------------------------------------------------------------------
-- shield(aw): cancelling the caller does not cancel aw

-- Once the outer future is cancelled, the inner one is left alone: an error it ends with later
-- is reported like any unretrieved one ("exception was never retrieved"), not dropped.
function tasks.shield(aw)
  local inner = ensure_future(aw)
  local outer = inner
  if not inner:done() then
    outer = inner:get_loop():create_future()
    local function on_inner(f)
      if outer:cancelled() then
        if not f:cancelled() then f:exception() end -- it ended before the cancel took effect
      elseif f:cancelled() then
        outer:cancel()
      elseif f:exception() ~= nil then
        outer:set_exception(f:exception())
      else
        outer:set_result(f:result())
      end
    end
    inner:add_done_callback(on_inner)
    outer:add_done_callback(function()
      if not inner:done() then inner:remove_done_callback(on_inner) end
    end)
  end
  if in_task() then return await_future(outer) end
  return outer
end

return tasks
