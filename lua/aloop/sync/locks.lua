-- Synchronization primitives (API.md §8): Lock, Event, Condition, Semaphore, BoundedSemaphore,
-- Barrier. Waiters queue in FIFO order (waiters.lua); Lock and Semaphore hand the lock/permit
-- straight to the first waiter, so nobody can barge in and nobody starves. A task cancelled
-- after it was handed the lock, a permit or a notification passes it on to the next waiter.
local core = require "aloop.core"
local W = require "aloop.sync.waiters"

local locks = {}
local bind, wait = W.bind, W.wait
local running_loop = core._running_loop
local iserror, CancelledError = core.iserror, core.CancelledError
local setmetatable, error, pcall, type = setmetatable, error, pcall, type

local function class(name)
  local c = { __name = "aloop." .. name }
  c.__index = c
  return c
end

local function waiters_note(q)
  local n = #q
  return n > 0 and (", waiters:%d"):format(n) or ""
end

-- What acquire() returns: closing it releases (`local _ <close> = lock:acquire()`). One guard
-- per lock or semaphore, made with it.
local Guard = { __name = "aloop.Guard" }
Guard.__index = Guard
function Guard.__close(g) g[1]:release() end
function Guard.__tostring(g) return "<guard of " .. tostring(g[1]) .. ">" end

-- The slow path of Lock/Semaphore acquire: wait in line until release() hands over the lock
-- or a permit. Cancelled after the handover, the waiter releases it again: it passes it on.
local function wait_handover(self, loop, what)
  local ok, err, woken = wait(self._w, loop, what)
  if not ok then
    if woken then self:release() end
    error(err, 0)
  end
  return self._guard
end

---------------------------------------------------------------------------------------
-- Lock: release() hands the lock to the first waiter, if any (it stays locked).

local Lock = class("Lock")

function locks.Lock()
  local self = setmetatable({ _locked = false, _w = W.new(), _loop = nil }, Lock)
  self._guard = setmetatable({ self }, Guard)
  return self
end

function Lock:acquire()
  local loop = running_loop()
  if loop == nil or loop ~= self._loop then loop = bind(self, "Lock.acquire", true) end
  if not self._locked then -- no waiter can be queued while it is unlocked
    self._locked = true
    return self._guard
  end
  return wait_handover(self, loop, "Lock.acquire")
end

function Lock:release()
  if not self._locked then error("aloop.Lock.release: the lock is not acquired", 2) end
  if not self._w:wake_first() then self._locked = false end
end

function Lock:locked() return self._locked end

function Lock:__tostring()
  return ("<aloop.Lock [%s%s]>"):format(self._locked and "locked" or "unlocked", waiters_note(self._w))
end

---------------------------------------------------------------------------------------
-- Event

local Event = class("Event")

function locks.Event() return setmetatable({ _value = false, _w = W.new(), _loop = nil }, Event) end

function Event:wait()
  local loop = running_loop()
  if loop == nil or loop ~= self._loop then loop = bind(self, "Event.wait", true) end
  if self._value then return true end
  local ok, err = wait(self._w, loop, "Event.wait")
  if not ok then error(err, 0) end
  return true
end

function Event:set()
  if not self._value then
    self._value = true
    self._w:wake_all()
  end
end

function Event:clear() self._value = false end
function Event:is_set() return self._value end

function Event:__tostring()
  return ("<aloop.Event [%s%s]>"):format(self._value and "set" or "unset", waiters_note(self._w))
end

---------------------------------------------------------------------------------------
-- Condition: wait() releases the lock, waits for a notify, and takes the lock back before it
-- returns or raises (also when cancelled).

local Condition = class("Condition")

function locks.Condition(lock)
  if lock == nil then
    lock = locks.Lock()
  elseif getmetatable(lock) ~= Lock then
    error("aloop.Condition: the lock must be an aio.Lock(), got " .. tostring(lock), 2)
  end
  return setmetatable({ _lock = lock, _w = W.new(), _loop = nil }, Condition)
end

function Condition:acquire() return self._lock:acquire() end
function Condition:release() return self._lock:release() end
function Condition:locked() return self._lock._locked end

function Condition:wait()
  local loop = running_loop()
  if loop == nil or loop ~= self._loop then loop = bind(self, "Condition.wait", true) end
  local lock = self._lock
  if not lock._locked then
    error("aloop.Condition.wait: the lock is not acquired (call cond:acquire() first)", 2)
  end
  lock:release()
  local ok, err, woken = wait(self._w, loop, "Condition.wait")
  local cancelled -- the last CancelledError while taking the lock back
  while true do
    local got, e = pcall(lock.acquire, lock)
    if got then break end
    if not iserror(e, CancelledError) then error(e, 0) end
    cancelled = e
  end
  if not ok or cancelled then
    if ok or woken then self:_notify(1) end -- a notification we cannot use: pass it on
    error(cancelled or err, 0)
  end
  return true
end

function Condition:wait_for(pred)
  local r = pred()
  if not r then bind(self, "Condition.wait_for", true) end
  while not r do
    self:wait()
    r = pred()
  end
  return r
end

function Condition:_notify(n)
  local q = self._w
  while n > 0 and q:wake_first() do n = n - 1 end
end

function Condition:notify(n)
  if not self._lock._locked then
    error("aloop.Condition.notify: the lock is not acquired (call cond:acquire() first)", 2)
  end
  if n ~= nil and type(n) ~= "number" then error("aloop.Condition.notify: n must be a number", 2) end
  self:_notify(n or 1)
end

function Condition:notify_all()
  if not self._lock._locked then
    error("aloop.Condition.notify_all: the lock is not acquired (call cond:acquire() first)", 2)
  end
  self._w:wake_all()
end

function Condition:__tostring()
  return ("<aloop.Condition [%s%s]>"):format(self._lock._locked and "locked" or "unlocked",
    waiters_note(self._w))
end

---------------------------------------------------------------------------------------
-- Semaphore, BoundedSemaphore: release() hands the permit to the first waiter, if any.

local Semaphore = class("Semaphore")
local BoundedSemaphore = class("BoundedSemaphore")
setmetatable(BoundedSemaphore, { __index = Semaphore })

local function new_semaphore(mt, what, value)
  if value == nil then value = 1 end
  if math.type(value) ~= "integer" or value < 0 then
    error(("aloop.%s: the initial value must be an integer >= 0, got %s"):format(what, tostring(value)), 3)
  end
  local self = setmetatable({ _value = value, _bound = value, _w = W.new(), _loop = nil }, mt)
  self._guard = setmetatable({ self }, Guard)
  return self
end

function locks.Semaphore(value) return new_semaphore(Semaphore, "Semaphore", value) end
function locks.BoundedSemaphore(value) return new_semaphore(BoundedSemaphore, "BoundedSemaphore", value) end

function Semaphore:acquire()
  local loop = running_loop()
  if loop == nil or loop ~= self._loop then loop = bind(self, "Semaphore.acquire", true) end
  local v = self._value
  if v > 0 then -- no waiter can be queued while a permit is free
    self._value = v - 1
    return self._guard
  end
  return wait_handover(self, loop, "Semaphore.acquire")
end

function Semaphore:release()
  if not self._w:wake_first() then self._value = self._value + 1 end
end

function BoundedSemaphore:release()
  if self._value >= self._bound then
    error("aloop.BoundedSemaphore.release: released too many times", 2)
  end
  return Semaphore.release(self)
end

function Semaphore:locked() return self._value == 0 end

function Semaphore:__tostring()
  return ("<%s [%s, value:%d%s]>"):format(getmetatable(self).__name,
    self._value == 0 and "locked" or "unlocked", self._value, waiters_note(self._w))
end
BoundedSemaphore.__tostring = Semaphore.__tostring

---------------------------------------------------------------------------------------
-- Barrier(parties): wait() blocks until `parties` tasks wait, then lets them all through and
-- returns each one's arrival index (0 .. parties-1). The state machine is asyncio's.

local FILLING, DRAINING, RESETTING, BROKEN = "filling", "draining", "resetting", "broken"
local Barrier = class("Barrier")

function locks.Barrier(parties)
  if math.type(parties) ~= "integer" or parties < 1 then
    error("aloop.Barrier: parties must be an integer >= 1, got " .. tostring(parties), 2)
  end
  local self = setmetatable({ parties = parties, _state = FILLING, _count = 0,
    _cond = locks.Condition() }, Barrier)
  self._passable = function() -- not while the previous round drains or a reset runs
    local s = self._state
    return s ~= DRAINING and s ~= RESETTING
  end
  self._released = function() return self._state ~= FILLING end
  return self
end

local function broken(msg) return core.BrokenBarrierError(msg) end

-- The part of wait() between arriving and leaving (it may raise; wait() cleans up).
local function pass(self, index)
  local cond = self._cond
  if index + 1 == self.parties then -- the last one in opens the barrier
    self._state = DRAINING
    cond:notify_all()
  else
    cond:wait_for(self._released)
    local s = self._state
    if s == BROKEN or s == RESETTING then error(broken("the barrier was aborted or reset"), 0) end
  end
end

-- The last one out refills the barrier and wakes those waiting for the next round.
local function leave(self)
  local count = self._count - 1
  self._count = count
  if count == 0 then
    local s = self._state
    if s == RESETTING or s == DRAINING then self._state = FILLING end
    self._cond:_notify(math.huge)
  end
end

function Barrier:wait()
  W.bind(self, "Barrier.wait", true)
  local cond = self._cond
  local _ <close> = cond:acquire()
  cond:wait_for(self._passable)
  if self._state == BROKEN then error(broken("the barrier is broken"), 0) end
  local index = self._count
  self._count = index + 1
  local ok, err = pcall(pass, self, index)
  leave(self)
  if not ok then error(err, 0) end
  return index
end

-- Back to the initial state; tasks waiting now get BrokenBarrierError.
function Barrier:reset()
  if self._count > 0 then
    if self._state ~= RESETTING then self._state = RESETTING end
  else
    self._state = FILLING
  end
  self._cond:_notify(math.huge)
end

-- Breaks the barrier: waiting and future wait() calls raise BrokenBarrierError.
function Barrier:abort()
  self._state = BROKEN
  self._cond:_notify(math.huge)
end

function Barrier:n_waiting() return self._state == FILLING and self._count or 0 end
function Barrier:broken() return self._state == BROKEN end

function Barrier:__tostring()
  return ("<aloop.Barrier [%s, waiters:%d/%d]>"):format(self._state, self:n_waiting(), self.parties)
end

return locks
