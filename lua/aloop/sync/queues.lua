-- Queues (API.md §8): Queue (FIFO), LifoQueue, PriorityQueue; maxsize back-pressure, task_done/
-- join, shutdown (Python 3.13). As in asyncio, put/get wake the first waiter on the other side,
-- which then takes its turn; a waiter woken for nothing goes back to the front of the line, and
-- one cancelled after its wake-up passes the wake-up on, so no item and no slot is ever lost.
local core = require "aloop.core"
local W = require "aloop.sync.waiters"

local queues = {}
local running_loop = core._running_loop
local bind, wait, wake_first, wake_all, was_woken = W.bind, W.wait, W.wake_first, W.wake_all, W.was_woken
local QueueEmpty, QueueFull, QueueShutDown = core.QueueEmpty, core.QueueFull, core.QueueShutDown
local setmetatable, error, type, tostring = setmetatable, error, type, tostring

-- The storage of each kind is three functions: init(self, ...), store(self, item, n) and
-- fetch(self, n) -> item (never called when empty), n being the size before the call. The
-- public methods are made once per kind around them (make_methods, below).
local Queue = { __name = "aloop.Queue" }
Queue.__index = Queue

local function subclass(name)
  local c = setmetatable({ __name = "aloop." .. name }, { __index = Queue })
  c.__index = c
  return c
end

local function new(mt, what, maxsize, ...)
  if maxsize == nil then maxsize = 0 end
  if type(maxsize) ~= "number" then
    error(("aloop.%s: maxsize must be a number, got %s"):format(what, type(maxsize)), 3)
  end
  local self = setmetatable({
    maxsize = maxsize, _n = 0, _unfinished = 0, _shutdown = false, _loop = nil,
    _getters = W.new(), _putters = W.new(), _joiners = W.new(),
  }, mt)
  mt._init(self, ...)
  return self
end

---------------------------------------------------------------------------------------
-- Queue: FIFO, items[h..t].

function Queue._init(self) self._items, self._h, self._t = {}, 1, 0 end

local function fifo_store(self, item)
  local t = self._t + 1
  self._t = t
  self._items[t] = item
end

local function fifo_fetch(self)
  local h, items = self._h, self._items
  local item = items[h]
  items[h] = nil
  if h == self._t then self._h, self._t = 1, 0 else self._h = h + 1 end
  return item
end

function queues.Queue(maxsize) return new(Queue, "Queue", maxsize) end

---------------------------------------------------------------------------------------
-- LifoQueue: a stack.

local LifoQueue = subclass("LifoQueue")

function LifoQueue._init(self) self._items = {} end
local function lifo_store(self, item, n) self._items[n + 1] = item end

local function lifo_fetch(self, n)
  local items = self._items
  local item = items[n]
  items[n] = nil
  return item
end

function queues.LifoQueue(maxsize) return new(LifoQueue, "LifoQueue", maxsize) end

---------------------------------------------------------------------------------------
-- PriorityQueue: a binary heap of (key, item, seq); seq breaks ties in insertion order.
-- Without `less`, keys are the items themselves (numbers or strings) or their first element
-- (tables), and put() refuses keys it could not compare with those already queued. A `less`
-- that raises leaves the heap as it was: slots are found first, moves happen after.

local PriorityQueue = subclass("PriorityQueue")

local function natural_lt(ka, sa, kb, sb) return ka < kb or (ka == kb and sa < sb) end

function PriorityQueue._init(self, less)
  self._keys, self._items, self._seqs, self._seq, self._path = {}, {}, {}, 0, {}
  if less == nil then
    self._lt = natural_lt
  elseif type(less) ~= "function" then
    error("aloop.PriorityQueue: less must be a function, got " .. type(less), 4)
  else
    self._less = less
    self._lt = function(a, sa, b, sb)
      if less(a, b) then return true end
      return not less(b, a) and sa < sb
    end
  end
end

local function natural_key(self, item, n)
  local k = item
  if type(k) == "table" then k = k[1] end
  local tk = type(k)
  if tk ~= "number" and tk ~= "string" then
    error(("aloop.PriorityQueue.put: cannot order %s (numbers, strings, or tables whose first "
      .. "element is one, unless the queue has a `less` function)"):format(tostring(item)), 4)
  end
  if n > 0 and type(self._keys[1]) ~= tk then
    error(("aloop.PriorityQueue.put: cannot order a %s key among %s keys"):format(tk, type(self._keys[1])), 4)
  end
  return k
end

local function heap_store(self, item, n)
  local key = self._less and item or natural_key(self, item, n)
  local keys, items, seqs, lt = self._keys, self._items, self._seqs, self._lt
  local seq = self._seq + 1
  local i = n + 1
  local j = i
  while j > 1 do -- where the new entry goes
    local p = j // 2
    if lt(key, seq, keys[p], seqs[p]) then j = p else break end
  end
  self._seq = seq
  while i > j do
    local p = i // 2
    keys[i], items[i], seqs[i] = keys[p], items[p], seqs[p]
    i = p
  end
  keys[j], items[j], seqs[j] = key, item, seq
end

local function heap_fetch(self, n)
  local keys, items, seqs, lt, path = self._keys, self._items, self._seqs, self._lt, self._path
  local top = items[1]
  local lk, li, ls = keys[n], items[n], seqs[n]
  n = n - 1 -- the last entry moves into the root's place: find where it sinks to
  local i, depth = 1, 0
  while true do
    local c = 2 * i
    if c > n then break end
    if c < n and lt(keys[c + 1], seqs[c + 1], keys[c], seqs[c]) then c = c + 1 end
    if not lt(keys[c], seqs[c], lk, ls) then break end
    depth = depth + 1
    path[depth] = c
    i = c
  end
  keys[n + 1], items[n + 1], seqs[n + 1] = nil, nil, nil
  if n > 0 then
    local h = 1
    for d = 1, depth do
      local c = path[d]
      keys[h], items[h], seqs[h] = keys[c], items[c], seqs[c]
      h = c
    end
    keys[h], items[h], seqs[h] = lk, li, ls
  end
  return top
end

function queues.PriorityQueue(maxsize, less) return new(PriorityQueue, "PriorityQueue", maxsize, less) end

---------------------------------------------------------------------------------------
-- The common part.

function Queue:qsize() return self._n end
function Queue:empty() return self._n == 0 end

function Queue:full()
  local m = self.maxsize
  return m > 0 and self._n >= m
end

local full = Queue.full

-- put/get/put_nowait/get_nowait of one kind. Storing wakes the first getter, fetching the
-- first putter. put/get check the loop on every call (they may suspend: they need a task).
local function make_methods(cls, store, fetch)
  cls._fetch = fetch
  local function push(self, item, n)
    store(self, item, n)
    self._n = n + 1
    self._unfinished = self._unfinished + 1
    local g = self._getters
    if g.n > 0 then wake_first(g) end
  end

  local function take(self, n)
    local item = fetch(self, n)
    self._n = n - 1
    local p = self._putters
    if p.n > 0 then wake_first(p) end
    return item
  end

  function cls:put_nowait(item)
    if self._shutdown then error(QueueShutDown("the queue is shut down"), 2) end
    local n, m = self._n, self.maxsize
    if m > 0 and n >= m then error(QueueFull("the queue is full"), 2) end
    push(self, item, n)
  end

  function cls:get_nowait()
    local n = self._n
    if n == 0 then
      if self._shutdown then error(QueueShutDown("the queue is shut down and empty"), 2) end
      error(QueueEmpty("the queue is empty"), 2)
    end
    return take(self, n)
  end

  function cls:put(item)
    local loop = running_loop()
    if loop == nil or loop ~= self._loop then loop = bind(self, "Queue.put", true) end
    local m = self.maxsize
    if m > 0 and self._n >= m then
      local again = false
      while full(self) and not self._shutdown do
        local ok, err, f = wait(self._putters, loop, again)
        if not ok then
          if not full(self) and was_woken(f) then wake_first(self._putters) end -- pass the slot on
          error(err, 0)
        end
        again = true
      end
    end
    if self._shutdown then error(QueueShutDown("the queue is shut down"), 2) end
    push(self, item, self._n)
  end

  function cls:get()
    local loop = running_loop()
    if loop == nil or loop ~= self._loop then loop = bind(self, "Queue.get", true) end
    local n = self._n
    if n == 0 then
      local again = false
      repeat
        if self._shutdown then error(QueueShutDown("the queue is shut down and empty"), 2) end
        local ok, err, f = wait(self._getters, loop, again)
        if not ok then
          if self._n > 0 and was_woken(f) then wake_first(self._getters) end -- pass the item on
          error(err, 0)
        end
        again = true
        n = self._n
      until n > 0
    end
    return take(self, n)
  end
end

make_methods(Queue, fifo_store, fifo_fetch)
make_methods(LifoQueue, lifo_store, lifo_fetch)
make_methods(PriorityQueue, heap_store, heap_fetch)

function Queue:task_done()
  local u = self._unfinished
  if u <= 0 then error("aloop.Queue.task_done: called more times than there were items put", 2) end
  self._unfinished = u - 1
  if u == 1 then wake_all(self._joiners) end
end

-- Waits until every item put so far has had its task_done().
function Queue:join()
  local loop = bind(self, "Queue.join", true)
  if self._unfinished > 0 then
    local ok, err = wait(self._joiners, loop)
    if not ok then error(err, 0) end
  end
end

-- Python 3.13: put raises QueueShutDown from now on; get does once the queue is empty (at
-- once with `immediate`, which also drops the items and counts them as done). Every waiting
-- put/get wakes up to find out.
function Queue:shutdown(immediate)
  self._shutdown = true
  if immediate then
    local fetch = getmetatable(self)._fetch
    while self._n > 0 do
      fetch(self, self._n)
      self._n = self._n - 1
      if self._unfinished > 0 then self._unfinished = self._unfinished - 1 end
    end
    if self._unfinished == 0 then wake_all(self._joiners) end
  end
  wake_all(self._getters)
  wake_all(self._putters)
end

function Queue:__tostring()
  local s = ("<%s maxsize=%s qsize=%d"):format(getmetatable(self).__name, tostring(self.maxsize), self._n)
  if self._getters.n > 0 then s = s .. (" getters[%d]"):format(self._getters.n) end
  if self._putters.n > 0 then s = s .. (" putters[%d]"):format(self._putters.n) end
  if self._unfinished > 0 then s = s .. (" tasks=%d"):format(self._unfinished) end
  if self._shutdown then s = s .. " shutdown" end
  return s .. ">"
end
LifoQueue.__tostring = Queue.__tostring
PriorityQueue.__tostring = Queue.__tostring

return queues
