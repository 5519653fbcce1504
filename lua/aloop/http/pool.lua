-- The client's connection pool: idle keep-alive connections per host, a total limit and a
-- per-host limit. A task that finds the pool full waits in a FIFO (never an error because the
-- pool is full; only its pool timeout ends the wait). A pooled connection that went stale
-- (closed by the peer, data arriving unasked, idle past keepalive_timeout) is dropped before
-- reuse.
local core = require "aloop.core"

local at_eof, buffered, exception = core._reader_methods.at_eof, core._reader_methods.buffered,
  core._reader_methods.exception

local Pool = {}
Pool.__index = Pool

-- Pool.new{limit=, limit_per_host=, keepalive_timeout=}
function Pool.new(opts)
  return setmetatable({ limit = opts.limit or 100, limit_per_host = opts.limit_per_host or 10,
    keepalive_timeout = opts.keepalive_timeout or 30, idle = {}, count = 0, per_host = {},
    waiters = {}, whead = 1, wtail = 0 }, Pool)
end

local function usable(conn, now, keepalive)
  local buf = conn.wire.buf
  return not conn.tr:is_closing() and not at_eof(buf) and buffered(buf) == 0
    and not exception(buf) and now - conn.idle_since < keepalive
end

function Pool:forget(conn)
  self.count = self.count - 1
  self.per_host[conn.key] = self.per_host[conn.key] - 1
  conn.tr:close()
end

-- Closes an idle connection of another host to make room (the oldest found).
function Pool:evict(except)
  for key, list in pairs(self.idle) do
    if key ~= except and #list > 0 then
      self:forget(table.remove(list, 1))
      return true
    end
  end
  return false
end

-- A reusable idle connection for key, or a slot to open one: conn | true | nil (must wait)
function Pool:try(key, loop)
  local list = self.idle[key]
  local now = loop:time()
  while list and #list > 0 do
    local conn = table.remove(list)
    if usable(conn, now, self.keepalive_timeout) then return conn end
    self:forget(conn)
  end
  local n = self.per_host[key] or 0
  if n >= self.limit_per_host then return nil end
  if self.count >= self.limit and not self:evict(key) then return nil end
  self.count = self.count + 1
  self.per_host[key] = n + 1
  return true
end

-- acquire(key, loop, wait) -> conn | true (a slot: open a connection, then add() or failed());
-- wait(future) awaits with the pool timeout.
function Pool:acquire(key, loop, wait)
  local got = self:try(key, loop)
  if got then return got end
  local me = { key = key, fut = loop:create_future() }
  self.wtail = self.wtail + 1
  self.waiters[self.wtail] = me
  while true do
    local ok, err = pcall(wait, me.fut)
    if not ok then
      local woken = me.gone
      me.gone = true
      if woken then self:wake() end -- pass the turn on
      error(err, 0)
    end
    got = self:try(key, loop)
    if got then return got end
    me.fut, me.gone = loop:create_future(), false -- lost a race: wait again, first in line
    self.whead = self.whead - 1
    self.waiters[self.whead] = me
  end
end

-- Could a waiter for key go on now?
function Pool:can_proceed(key)
  local list = self.idle[key]
  if list and #list > 0 then return true end
  if (self.per_host[key] or 0) >= self.limit_per_host then return false end
  if self.count < self.limit then return true end
  for k, l in pairs(self.idle) do if k ~= key and #l > 0 then return true end end
  return false
end

-- Wakes the first waiter (in arrival order) that can go on.
function Pool:wake()
  local waiters = self.waiters
  while self.whead <= self.wtail and waiters[self.whead].gone do
    waiters[self.whead] = nil
    self.whead = self.whead + 1
  end
  for i = self.whead, self.wtail do
    local w = waiters[i]
    if not w.gone and self:can_proceed(w.key) then
      w.gone = true
      w.fut:set_result()
      return
    end
  end
end

-- release(conn, reusable): back to the idle list, or closed; the next waiter gets its turn.
function Pool:release(conn, reusable, loop)
  if reusable and not self.closed then
    conn.idle_since = loop:time()
    local list = self.idle[conn.key]
    if not list then list = {} self.idle[conn.key] = list end
    list[#list + 1] = conn
  else
    self:forget(conn)
  end
  self:wake()
end

-- failed(key): a slot whose connection could not be opened
function Pool:failed(key, loop)
  self.count = self.count - 1
  self.per_host[key] = self.per_host[key] - 1
  self:wake()
end

function Pool:close()
  self.closed = true
  for _, list in pairs(self.idle) do
    for _, conn in ipairs(list) do self:forget(conn) end
  end
  self.idle = {}
end

return Pool
