-- Synchronization primitives (API.md §8, lua/aloop/sync/locks.lua): Lock, Event, Condition,
-- Semaphore, BoundedSemaphore, Barrier; FIFO fairness, cancellation safety, errors on misuse.
local aio = require "aloop"
local H = require "spec.helper"

local async, settle, assert_cancelled = H.async, H.settle, H.assert_cancelled

local function is_cancelled(err) return aio.iserror(err, aio.CancelledError) end

-- Runs fn on a new loop as a task (for the "two loops" specs); returns pcall's results.
local function on_new_loop(fn)
  local loop = aio.new_event_loop()
  local res = table.pack(pcall(loop.run_until_complete, loop, fn))
  loop:close()
  return table.unpack(res, 1, res.n)
end

describe("Lock", function()
  it("acquire locks it and release unlocks it", async(function()
    local lock = aio.Lock()
    assert.is_false(lock:locked())
    lock:acquire()
    assert.is_true(lock:locked())
    lock:release()
    assert.is_false(lock:locked())
  end))

  it("acquire returns a to-be-closed guard that releases at the end of the scope", async(function()
    local lock = aio.Lock()
    do
      local _ <close> = lock:acquire()
      assert.is_true(lock:locked())
    end
    assert.is_false(lock:locked())
  end))

  it("the guard releases when the scope raises", async(function()
    local lock = aio.Lock()
    local ok, err = pcall(function()
      local _ <close> = lock:acquire()
      error("boom", 0)
    end)
    assert.same({ false, "boom" }, { ok, err })
    assert.is_false(lock:locked())
  end))

  it("a second acquirer waits until the holder releases", async(function()
    local lock, log = aio.Lock(), {}
    lock:acquire()
    local t = aio.create_task(function()
      local _ <close> = lock:acquire()
      log[#log + 1] = "got it"
    end)
    settle()
    assert.same({}, log)
    log[#log + 1] = "release"
    lock:release()
    t:await()
    assert.same({ "release", "got it" }, log)
    assert.is_false(lock:locked())
  end))

  it("wakes waiters in FIFO order", async(function()
    local lock, order = aio.Lock(), {}
    lock:acquire()
    local ts = {}
    for i = 1, 5 do
      ts[i] = aio.create_task(function()
        local _ <close> = lock:acquire()
        order[#order + 1] = i
        aio.sleep(0)
      end)
    end
    settle()
    lock:release()
    aio.gather(ts)
    assert.same({ 1, 2, 3, 4, 5 }, order)
  end))

  it("hands the lock to the first waiter: a newcomer cannot barge in", async(function()
    local lock, order = aio.Lock(), {}
    lock:acquire()
    local waiter = aio.create_task(function()
      local _ <close> = lock:acquire()
      order[#order + 1] = "waiter"
    end)
    settle()
    lock:release()
    assert.is_true(lock:locked()) -- already the waiter's, though it has not run yet
    local newcomer = aio.create_task(function()
      local _ <close> = lock:acquire()
      order[#order + 1] = "newcomer"
    end)
    aio.gather(waiter, newcomer)
    assert.same({ "waiter", "newcomer" }, order)
  end))

  it("no waiter starves: 50 tasks taking it 20 times each all finish, in rotation", async(function()
    local lock, order = aio.Lock(), {}
    local ts = {}
    for i = 1, 50 do
      ts[i] = aio.create_task(function()
        for _ = 1, 20 do
          local _ <close> = lock:acquire()
          order[#order + 1] = i
          aio.sleep(0)
        end
      end)
    end
    aio.gather(ts)
    assert.equal(1000, #order)
    for k = 1, #order do assert.equal((k - 1) % 50 + 1, order[k]) end
  end))

  it("a task cancelled while waiting leaves the lock consistent for the others", async(function()
    local lock = aio.Lock()
    lock:acquire()
    local a = aio.create_task(function() local _ <close> = lock:acquire() end)
    local got_b = false
    local b = aio.create_task(function()
      local _ <close> = lock:acquire()
      got_b = true
    end)
    settle()
    a:cancel()
    settle()
    assert.is_true(lock:locked())
    lock:release()
    b:await()
    assert.is_true(got_b)
    assert_cancelled(a)
    assert.is_false(lock:locked())
  end))

  it("a waiter cancelled right after it was handed the lock passes it on", async(function()
    local lock = aio.Lock()
    lock:acquire()
    local a_ran = false
    local a = aio.create_task(function()
      local _ <close> = lock:acquire()
      a_ran = true
    end)
    local b = aio.create_task(function()
      local _ <close> = lock:acquire()
      return "b had it"
    end)
    settle()
    lock:release() -- handed to a, which has not run yet
    a:cancel()
    assert.equal("b had it", b:await())
    assert_cancelled(a)
    assert.is_false(a_ran)
    assert.is_false(lock:locked())
  end))

  it("a waiter cancelled after it was handed the lock, with nobody behind it, unlocks it", async(function()
    local lock = aio.Lock()
    lock:acquire()
    local a = aio.create_task(function() local _ <close> = lock:acquire() end)
    settle()
    lock:release()
    a:cancel()
    assert_cancelled(a)
    assert.is_false(lock:locked())
    local _ <close> = lock:acquire() -- and it can be taken again at once
  end))

  it("release of an unlocked lock is an error", async(function()
    local lock = aio.Lock()
    local ok, err = pcall(lock.release, lock)
    assert.is_false(ok)
    assert.matches("Lock.release: the lock is not acquired", err)
  end))

  it("acquire outside a task is an error that names the fix", function()
    local ok, err = pcall(aio.Lock().acquire, aio.Lock())
    assert.is_false(ok)
    assert.matches("Lock.acquire: not inside a task", err)
  end)

  it("using a lock from a second loop is an error", function()
    local lock = aio.Lock()
    assert.is_true((on_new_loop(function()
      local _ <close> = lock:acquire()
    end)))
    local ok, err = on_new_loop(function() lock:acquire() end)
    assert.is_false(ok)
    assert.matches("Lock.acquire: <aloop.Lock %[unlocked%]> is bound to a different event loop", err)
  end)

  it("acquire from a callback (not inside a task) is a clear error", async(function()
    local lock = aio.Lock()
    local _ <close> = lock:acquire()
    local fut = aio.get_running_loop():create_future()
    aio.get_running_loop():call_soon(function()
      fut:set_result(select(2, pcall(lock.acquire, lock)))
    end)
    assert.matches("Lock.acquire: not inside a task", fut:await())
    assert.equal("<aloop.Lock [locked]>", tostring(lock)) -- the failed wait left no waiter
  end))

  it("tostring shows the state and the waiters", async(function()
    local lock = aio.Lock()
    assert.equal("<aloop.Lock [unlocked]>", tostring(lock))
    lock:acquire()
    local t = aio.create_task(function() local _ <close> = lock:acquire() end)
    settle()
    assert.equal("<aloop.Lock [locked, waiters:1]>", tostring(lock))
    lock:release()
    t:await()
  end))
end)

describe("Event", function()
  it("wait returns at once when the event is set", async(function()
    local ev = aio.Event()
    assert.is_false(ev:is_set())
    ev:set()
    assert.is_true(ev:is_set())
    assert.is_true(ev:wait())
  end))

  it("set wakes every waiter, in the order they came", async(function()
    local ev, order = aio.Event(), {}
    local ts = {}
    for i = 1, 3 do
      ts[i] = aio.create_task(function()
        ev:wait()
        order[#order + 1] = i
      end)
    end
    settle()
    assert.same({}, order)
    ev:set()
    aio.gather(ts)
    assert.same({ 1, 2, 3 }, order)
  end))

  it("clear makes wait block again", async(function()
    local ev = aio.Event()
    ev:set()
    ev:clear()
    assert.is_false(ev:is_set())
    local t = aio.create_task(function() return ev:wait() end)
    settle()
    assert.is_false(t:done())
    ev:set()
    assert.is_true(t:await())
  end))

  it("a cancelled waiter does not keep the others from waking", async(function()
    local ev = aio.Event()
    local a = aio.create_task(function() ev:wait() end)
    local b = aio.create_task(function() return ev:wait() end)
    settle()
    a:cancel()
    settle()
    ev:set()
    assert.is_true(b:await())
    assert_cancelled(a)
  end))

  it("using an event from a second loop is an error", function()
    local ev = aio.Event()
    local ok1 = on_new_loop(function()
      aio.create_task(function() ev:set() end)
      ev:wait()
    end)
    assert.is_true(ok1)
    local ok, err = on_new_loop(function() ev:wait() end)
    assert.is_false(ok)
    assert.matches("Event.wait: .* is bound to a different event loop", err)
  end)
end)

describe("Condition", function()
  it("wait without holding the lock is an error", async(function()
    local cond = aio.Condition()
    local ok, err = pcall(cond.wait, cond)
    assert.is_false(ok)
    assert.matches("Condition.wait: the lock is not acquired", err)
  end))

  it("notify and notify_all without holding the lock are errors", async(function()
    local cond = aio.Condition()
    local ok, err = pcall(cond.notify, cond)
    assert.is_false(ok)
    assert.matches("Condition.notify: the lock is not acquired", err)
    ok, err = pcall(cond.notify_all, cond)
    assert.is_false(ok)
    assert.matches("Condition.notify_all: the lock is not acquired", err)
  end))

  it("wait releases the lock and holds it again when it returns", async(function()
    local cond = aio.Condition()
    local t = aio.create_task(function()
      local _ <close> = cond:acquire()
      cond:wait()
      return cond:locked()
    end)
    settle()
    assert.is_false(cond:locked()) -- released while waiting
    do
      local _ <close> = cond:acquire()
      cond:notify()
    end
    assert.is_true(t:await())
    assert.is_false(cond:locked())
  end))

  it("notify(n) wakes n waiters in FIFO order; notify_all wakes the rest", async(function()
    local cond, order = aio.Condition(), {}
    local ts = {}
    for i = 1, 5 do
      ts[i] = aio.create_task(function()
        local _ <close> = cond:acquire()
        cond:wait()
        order[#order + 1] = i
      end)
    end
    settle()
    do
      local _ <close> = cond:acquire()
      cond:notify(2)
    end
    settle()
    assert.same({ 1, 2 }, order)
    do
      local _ <close> = cond:acquire()
      cond:notify_all()
    end
    aio.gather(ts)
    assert.same({ 1, 2, 3, 4, 5 }, order)
  end))

  it("wait_for returns the predicate's value once it holds", async(function()
    local cond, items = aio.Condition(), {}
    local consumer = aio.create_task(function()
      local _ <close> = cond:acquire()
      return cond:wait_for(function() return items[3] end)
    end)
    for i = 1, 3 do
      settle()
      local _ <close> = cond:acquire()
      items[i] = "item" .. i
      cond:notify()
    end
    assert.equal("item3", consumer:await())
  end))

  it("a waiter cancelled while waiting holds the lock again when CancelledError arrives", async(function()
    local cond = aio.Condition()
    local t = aio.create_task(function()
      local _ <close> = cond:acquire()
      local ok, err = pcall(cond.wait, cond)
      return ok, is_cancelled(err), cond:locked()
    end)
    settle()
    local _ <close> = cond:acquire() -- the waiter must wait for us to take the lock back
    t:cancel()
    settle()
    assert.is_false(t:done())
    cond:release()
    local ok, cancelled, locked = t:await()
    assert.same({ false, true, true }, { ok, cancelled, locked })
    assert.is_false(cond:locked())
    cond:acquire() -- for the <close> above
  end))

  it("a waiter cancelled after it was notified passes the notification on", async(function()
    local cond = aio.Condition()
    local woken = {}
    local function waiter(name)
      local _ <close> = cond:acquire()
      cond:wait()
      woken[#woken + 1] = name
    end
    local a = aio.create_task(waiter, "a")
    local b = aio.create_task(waiter, "b")
    settle()
    do
      local _ <close> = cond:acquire()
      cond:notify(1) -- meant for a
    end
    a:cancel()
    b:await()
    assert_cancelled(a)
    assert.same({ "b" }, woken)
    assert.is_false(cond:locked())
  end))

  it("shares the lock it is given", async(function()
    local lock = aio.Lock()
    local cond = aio.Condition(lock)
    local _ <close> = cond:acquire()
    assert.is_true(lock:locked())
    cond:release()
    assert.is_false(lock:locked())
    lock:acquire()
    assert.is_true(cond:locked())
  end))

  it("refuses a lock that is not an aio.Lock", function()
    local ok, err = pcall(aio.Condition, aio.Semaphore(1))
    assert.is_false(ok)
    assert.matches("Condition: the lock must be an aio.Lock", err)
  end)

  it("using a condition from a second loop is an error", function()
    local cond = aio.Condition()
    assert.is_true((on_new_loop(function()
      local _ <close> = cond:acquire()
      aio.create_task(function()
        local _ <close> = cond:acquire()
        cond:notify()
      end)
      cond:wait()
    end)))
    local ok, err = on_new_loop(function()
      local _ <close> = cond:acquire()
      cond:wait()
    end)
    assert.is_false(ok)
    assert.matches("bound to a different event loop", err)
  end)
end)

describe("Semaphore", function()
  it("counts acquisitions down to 0, then locked() is true", async(function()
    local sem = aio.Semaphore(2)
    sem:acquire()
    assert.is_false(sem:locked())
    sem:acquire()
    assert.is_true(sem:locked())
    sem:release()
    assert.is_false(sem:locked())
  end))

  it("the guard gives the permit back", async(function()
    local sem = aio.Semaphore(1)
    do
      local _ <close> = sem:acquire()
      assert.is_true(sem:locked())
    end
    assert.is_false(sem:locked())
  end))

  it("lets at most n tasks in at once, the waiters in FIFO order", async(function()
    local sem, inside, most, order = aio.Semaphore(2), 0, 0, {}
    local ts = {}
    for i = 1, 6 do
      ts[i] = aio.create_task(function()
        local _ <close> = sem:acquire()
        order[#order + 1] = i
        inside = inside + 1
        if inside > most then most = inside end
        aio.sleep(0)
        aio.sleep(0)
        inside = inside - 1
      end)
    end
    aio.gather(ts)
    assert.equal(2, most)
    assert.same({ 1, 2, 3, 4, 5, 6 }, order)
    assert.is_false(sem:locked())
  end))

  it("a task cancelled while waiting does not take a permit", async(function()
    local sem = aio.Semaphore(0)
    local a = aio.create_task(function() sem:acquire() end)
    local b = aio.create_task(function() sem:acquire(); return "b" end)
    settle()
    a:cancel()
    settle()
    sem:release()
    assert.equal("b", b:await())
    assert_cancelled(a)
    assert.is_true(sem:locked())
    sem:release()
    assert.is_false(sem:locked())
  end))

  it("a waiter cancelled right after it was handed a permit passes it on", async(function()
    local sem = aio.Semaphore(0)
    local a = aio.create_task(function() sem:acquire() end)
    local b = aio.create_task(function() sem:acquire(); return "b" end)
    settle()
    sem:release() -- handed to a
    a:cancel()
    assert.equal("b", b:await())
    assert_cancelled(a)
    assert.is_true(sem:locked()) -- b holds the only permit
  end))

  it("a plain Semaphore may be released above its initial value", async(function()
    local sem = aio.Semaphore(1)
    sem:release()
    sem:acquire()
    sem:acquire()
    assert.is_true(sem:locked())
  end))

  it("rejects a negative or non-integer initial value", function()
    assert.matches("initial value must be an integer >= 0", select(2, pcall(aio.Semaphore, -1)))
    assert.matches("initial value must be an integer >= 0", select(2, pcall(aio.BoundedSemaphore, 1.5)))
  end)

  it("acquire outside a task is an error that names the fix", function()
    local sem = aio.Semaphore(1)
    local ok, err = pcall(sem.acquire, sem)
    assert.is_false(ok)
    assert.matches("Semaphore.acquire: not inside a task", err)
  end)

  it("using a semaphore from a second loop is an error", function()
    local sem = aio.Semaphore(1)
    assert.is_true((on_new_loop(function() local _ <close> = sem:acquire() end)))
    local ok, err = on_new_loop(function() sem:acquire() end)
    assert.is_false(ok)
    assert.matches("Semaphore.acquire: .* is bound to a different event loop", err)
  end)
end)

describe("BoundedSemaphore", function()
  it("releasing more than acquired is an error", async(function()
    local sem = aio.BoundedSemaphore(2)
    sem:acquire()
    sem:release()
    local ok, err = pcall(sem.release, sem)
    assert.is_false(ok)
    assert.matches("BoundedSemaphore.release: released too many times", err)
    assert.is_false(sem:locked())
  end))

  it("works like a Semaphore otherwise", async(function()
    local sem = aio.BoundedSemaphore(1)
    local _ <close> = sem:acquire()
    local t = aio.create_task(function() local _ <close> = sem:acquire(); return "in" end)
    settle()
    assert.is_false(t:done())
    sem:release()
    assert.equal("in", t:await())
    sem:acquire() -- for the <close> above
  end))
end)

describe("Barrier", function()
  it("lets the parties through together, each with its own index", async(function()
    local barrier, log = aio.Barrier(3), {}
    local ts = {}
    for i = 1, 3 do
      ts[i] = aio.create_task(function()
        log[#log + 1] = "arrive " .. i
        local index = barrier:wait()
        log[#log + 1] = "pass " .. i
        return index
      end)
    end
    local res = aio.gather(ts)
    assert.same({ "arrive 1", "arrive 2", "arrive 3", "pass 3", "pass 1", "pass 2" }, log)
    table.sort(res)
    assert.same({ 0, 1, 2 }, { res[1], res[2], res[3] })
  end))

  it("waits while fewer than parties have arrived; n_waiting counts them", async(function()
    local barrier = aio.Barrier(2)
    local t = aio.create_task(function() return barrier:wait() end)
    settle()
    assert.is_false(t:done())
    assert.equal(1, barrier:n_waiting())
    assert.equal(2, barrier.parties)
    assert.equal(1, barrier:wait())
    assert.equal(0, t:await())
    assert.equal(0, barrier:n_waiting())
  end))

  it("can be used for several rounds", async(function()
    local barrier, rounds = aio.Barrier(2), { 0, 0 }
    local function party(i)
      for _ = 1, 3 do
        barrier:wait()
        rounds[i] = rounds[i] + 1
      end
    end
    aio.gather(aio.coro(party, 1), aio.coro(party, 2))
    assert.same({ 3, 3 }, rounds)
  end))

  it("abort breaks it: waiting and later wait() raise BrokenBarrierError", async(function()
    local barrier = aio.Barrier(3)
    local t = aio.create_task(function() return pcall(barrier.wait, barrier) end)
    settle()
    barrier:abort()
    local ok, err = t:await()
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.BrokenBarrierError), tostring(err))
    assert.is_true(barrier:broken())
    ok, err = pcall(barrier.wait, barrier)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.BrokenBarrierError), tostring(err))
  end))

  it("reset breaks the current round and makes it usable again", async(function()
    local barrier = aio.Barrier(2)
    local t = aio.create_task(function() return pcall(barrier.wait, barrier) end)
    settle()
    barrier:reset()
    local ok, err = t:await()
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.BrokenBarrierError), tostring(err))
    assert.is_false(barrier:broken())
    local other = aio.create_task(function() return barrier:wait() end)
    settle()
    assert.equal(1, barrier:wait())
    assert.equal(0, other:await())
  end))

  it("a party cancelled while waiting leaves the barrier filling", async(function()
    local barrier = aio.Barrier(2)
    local a = aio.create_task(function() barrier:wait() end)
    settle()
    a:cancel()
    assert_cancelled(a)
    assert.equal(0, barrier:n_waiting())
    local b = aio.create_task(function() return barrier:wait() end)
    settle()
    assert.equal(1, barrier:wait())
    assert.equal(0, b:await())
  end))

  it("rejects parties < 1", function()
    assert.matches("parties must be an integer >= 1", select(2, pcall(aio.Barrier, 0)))
  end)
end)
