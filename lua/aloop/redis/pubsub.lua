-- Pub/sub (aloop.redis.pubsub): a Subscriber owns a connection of its own in subscribe mode.
-- Messages are queued until sub:get_message(timeout) or the sub:messages() iterator takes them:
-- {type = "message", channel =, data =} or {type = "pmessage", pattern =, channel =, data =}.
-- When the connection drops, the next read raises the error once; the read after that
-- reconnects, subscribes again to every channel and pattern, and returns {type = "reconnected"}.
local aio = require "aloop"
local core = require "aloop.core"
local connection = require "aloop.redis.connection"

local await = core.await_future
local ReplyError = connection.ReplyError

local M = {}

local Subscriber = { __name = "aloop.redis.Subscriber" }
Subscriber.__index = Subscriber
M.Subscriber = Subscriber

local function fifo() return { head = 1, tail = 0 } end
local function push(q, v)
  q.tail = q.tail + 1
  q[q.tail] = v
end
local function pop(q)
  local v = q[q.head]
  if v == nil then return nil end
  q[q.head] = nil
  q.head = q.head + 1
  return v
end

function M.new(opts, loop)
  local self = setmetatable({
    _loop = loop, _channels = {}, _patterns = {}, _msgs = fifo(), _getters = fifo(),
    _confirms = fifo(), _closed = false, _error = false, _connected = false,
  }, Subscriber)
  self._conn = connection.new(opts, loop, function(list, n) self:_on_push(list, n) end)
  self._conn._on_lost = function(err) self:_on_lost(err) end
  return self
end

-- Wakes the first reader still waiting; the message stays queued until a reader takes it, so
-- a reader cancelled right after being woken loses nothing.
local function wake(self)
  for fut in pop, self._getters do
    if not fut:done() then return fut:set_result(true) end
  end
end

local function deliver(self, msg)
  push(self._msgs, msg)
  wake(self)
end

-- A subscribe/unsubscribe confirmation: one fewer for the oldest request waiting.
local function confirm(self, err)
  local c = self._confirms
  local req = c[c.head]
  if not req then return end
  req.remaining = req.remaining - 1
  if err or req.remaining == 0 then
    pop(c)
    if not req.fut:done() then
      if err then req.fut:set_exception(err) else req.fut:set_result() end
    end
  end
end

local CONFIRMS = { subscribe = true, psubscribe = true, unsubscribe = true, punsubscribe = true }

function Subscriber:_on_push(list, n)
  for i = 1, n do
    local m = list[i]
    list[i] = nil
    if getmetatable(m) == ReplyError then
      confirm(self, m)
    elseif type(m) == "table" then
      local kind = m[1]
      if kind == "message" then
        deliver(self, { type = "message", channel = m[2], data = m[3] })
      elseif kind == "pmessage" then
        deliver(self, { type = "pmessage", pattern = m[2], channel = m[3], data = m[4] })
      elseif CONFIRMS[kind] then
        confirm(self)
      end
    end
  end
end

function Subscriber:_on_lost(err)
  local c = self._confirms
  for req in pop, c do
    if not req.fut:done() then req.fut:set_exception(err) end
  end
  local reported = false
  for fut in pop, self._getters do
    if not fut:done() then
      if self._closed then fut:set_result(true) else fut:set_exception(err) end
      reported = true
    end
  end
  if not reported and not self._closed then self._error = err end
end

local function keys(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return list
end

-- Sends cmd for names and waits for `count` confirmations.
local function request(self, count, cmd, ...)
  local fut = self._loop:create_future()
  push(self._confirms, { remaining = count, fut = fut })
  self._conn:write(cmd, ...)
  return await(fut)
end

-- Connects, or reconnects and subscribes again (queueing a "reconnected" message).
function Subscriber:_ensure()
  local conn = self._conn
  if conn._state == "ready" then return end
  if self._closed then error(aio.InvalidStateError("aloop.redis: the subscriber is closed"), 3) end
  conn:ensure()
  if not self._connected then
    self._connected = true
    return
  end
  local channels, patterns = keys(self._channels), keys(self._patterns)
  if #channels > 0 then request(self, #channels, "SUBSCRIBE", table.unpack(channels)) end
  if #patterns > 0 then request(self, #patterns, "PSUBSCRIBE", table.unpack(patterns)) end
  push(self._msgs, { type = "reconnected" })
end

local function names(what, ...)
  local n = select("#", ...)
  if n == 0 then error(("aloop.redis: %s: at least one name expected"):format(what), 3) end
  for i = 1, n do
    if type((select(i, ...))) ~= "string" then
      error(("aloop.redis: %s: names must be strings"):format(what), 3)
    end
  end
  return n
end

local function subscribe(self, set, cmd, ...)
  local n = names(cmd:lower(), ...)
  self:_ensure()
  for i = 1, n do set[(select(i, ...))] = true end
  request(self, n, cmd, ...)
  return self
end

function Subscriber:subscribe(...) return subscribe(self, self._channels, "SUBSCRIBE", ...) end
function Subscriber:psubscribe(...) return subscribe(self, self._patterns, "PSUBSCRIBE", ...) end

-- unsubscribe(...) / punsubscribe(...): from the names given, or from all of them.
local function unsubscribe(self, set, cmd, ...)
  local n = select("#", ...)
  local count = n
  if n == 0 then
    count = math.max(#keys(set), 1)
    for k in pairs(set) do set[k] = nil end
  else
    names(cmd:lower(), ...)
    for i = 1, n do set[(select(i, ...))] = nil end
  end
  if self._conn._state ~= "ready" then return end -- nothing to undo on the server
  request(self, count, cmd, ...)
end

function Subscriber:unsubscribe(...) return unsubscribe(self, self._channels, "UNSUBSCRIBE", ...) end
function Subscriber:punsubscribe(...) return unsubscribe(self, self._patterns, "PUNSUBSCRIBE", ...) end

local function timeout_getter(fut)
  if not fut:done() then fut:set_result(false) end
end

-- The next message; nil after `timeout` seconds without one, or once the subscriber is closed.
function Subscriber:get_message(timeout)
  local loop = self._loop
  local deadline = timeout and loop:time() + timeout
  while true do
    if self._closed then return nil end
    if self._error then
      local err = self._error
      self._error = false
      error(err, 0)
    end
    local m = pop(self._msgs)
    if m then return m end
    if self._conn._state ~= "ready" then
      self:_ensure() -- queues "reconnected" after a drop
    else
      local fut = loop:create_future()
      push(self._getters, fut)
      local h = deadline and loop:call_at(deadline, timeout_getter, fut)
      local ok, res = pcall(await, fut)
      if h then h:cancel() end
      if not ok then
        if self._msgs[self._msgs.head] then wake(self) end -- pass a wake-up on
        error(res, 0)
      end
      if res == false then return nil end -- timed out
    end
  end
end

-- for m in sub:messages() do ... end (the analog of `async for m in pubsub.listen()`)
function Subscriber:messages()
  return function() return self:get_message() end
end

function Subscriber:close()
  if self._closed then return end
  self._closed = true
  self._conn:close()
  for fut in pop, self._getters do
    if not fut:done() then fut:set_result(true) end
  end
end
Subscriber.__close = Subscriber.close

return M
