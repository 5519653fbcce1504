-- Queues (API.md §8): Queue (FIFO), LifoQueue, PriorityQueue; maxsize back-pressure, task_done/
-- join, shutdown (Python 3.13). The methods are C (src/sync/queue.c: one call per put or get,
-- waiters parked on C waiter lists); a queue is a table holding its C core at [1] and `maxsize`.
-- PriorityQueue keeps its heap here and hands the core its store/fetch functions.
local core = require "aloop.core"

local queues = {}
local new_core = core._Queue
local setmetatable, getmetatable, error, type, tostring = setmetatable, getmetatable, error, type, tostring

local Queue = { __name = "aloop.Queue" }
Queue.__index = Queue
for name, fn in pairs(core._queue_methods) do Queue[name] = fn end

local function subclass(name)
  local c = setmetatable({ __name = "aloop." .. name }, { __index = Queue })
  c.__index = c
  return c
end

local function check_maxsize(what, maxsize)
  if maxsize == nil then return 0 end
  if type(maxsize) ~= "number" then
    error(("aloop.%s: maxsize must be a number, got %s"):format(what, type(maxsize)), 3)
  end
  return maxsize
end

function queues.Queue(maxsize)
  maxsize = check_maxsize("Queue", maxsize)
  return setmetatable({ new_core("fifo", maxsize), maxsize = maxsize }, Queue)
end

local LifoQueue = subclass("LifoQueue")

function queues.LifoQueue(maxsize)
  maxsize = check_maxsize("LifoQueue", maxsize)
  return setmetatable({ new_core("lifo", maxsize), maxsize = maxsize }, LifoQueue)
end

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
    error("aloop.PriorityQueue: less must be a function, got " .. type(less), 3)
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

function queues.PriorityQueue(maxsize, less)
  maxsize = check_maxsize("PriorityQueue", maxsize)
  local self = { false, maxsize = maxsize }
  PriorityQueue._init(self, less)
  self[1] = new_core("custom", maxsize, heap_store, heap_fetch)
  return setmetatable(self, PriorityQueue)
end

function Queue:__tostring()
  local getters, putters, unfinished, shutdown = self:_state()
  local s = ("<%s maxsize=%s qsize=%d"):format(getmetatable(self).__name, tostring(self.maxsize), self:qsize())
  if getters > 0 then s = s .. (" getters[%d]"):format(getters) end
  if putters > 0 then s = s .. (" putters[%d]"):format(putters) end
  if unfinished > 0 then s = s .. (" tasks=%d"):format(unfinished) end
  if shutdown then s = s .. " shutdown" end
  return s .. ">"
end
LifoQueue.__tostring = Queue.__tostring
PriorityQueue.__tostring = Queue.__tostring

return queues
