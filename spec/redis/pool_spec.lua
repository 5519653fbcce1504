-- aloop.redis pools and dedicated connections against a real redis-server: pool_size bounds
-- the connections, r:acquire() waits FIFO for a free one (never an error), blocking and
-- stateful commands are refused on the shared connection and work on a dedicated one, and a
-- connection left in a state of its own is closed rather than handed to the next user.
local aio = require "aloop"
local redis = require "aloop.redis"
local H = require "spec.helper"
local R = require "spec.redis_helper"
local it_fds = require("spec.net_helper").it_fds(it)

local function client_count(srv)
  local _, n = srv:cli("client list"):gsub("cmd=", "")
  return n - 1 -- not redis-cli itself
end

describe("aloop.redis pool", function()
  local srv
  setup(function() srv = R.server() end)
  teardown(function() srv:stop() end)

  it_fds("opens at most pool_size connections and hands them out FIFO", function()
    local r <close> = redis.connect(srv.url, { pool_size = 2 })
    local c1 = r:acquire()
    local c2 = r:acquire() -- the shared one, idle, is lent out too
    assert.equal(2, client_count(srv))
    local order = {}
    local waiters = {}
    for i = 1, 3 do
      waiters[i] = aio.create_task(function()
        local c <close> = r:acquire()
        order[#order + 1] = i
        c:set("w" .. i, i)
        aio.sleep(0)
      end)
    end
    H.settle()
    assert.same({}, order) -- all waiting, none failed
    c1:release()
    c2:release()
    aio.gather(waiters)
    assert.same({ 1, 2, 3 }, order)
    assert.same({ "1", "2", "3" }, r:mget("w1", "w2", "w3"))
    assert.is_true(client_count(srv) <= 2)
  end)

  it_fds("passes a connection on when its waiter is cancelled right after getting it", function()
    local r <close> = redis.connect(srv.url, { pool_size = 1 })
    local c = r:acquire()
    local first = aio.create_task(function() local d <close> = r:acquire(); return "first" end)
    local second = aio.create_task(function() local d <close> = r:acquire(); return d:ping() end)
    H.settle()
    c:release() -- hands the connection to `first`, which is cancelled before it runs
    first:cancel()
    H.assert_cancelled(first)
    assert.equal("PONG", aio.await(second))
  end)

  it_fds("makes shared commands wait for a connection when every one is lent out", function()
    local r <close> = redis.connect(srv.url, { pool_size = 1 })
    local c = r:acquire()
    local t = aio.create_task(function() return r:incr("shared_wait") end)
    H.settle()
    assert.is_false(t:done())
    c:del("shared_wait")
    c:release()
    assert.equal(1, aio.await(t))
  end)

  it_fds("refuses blocking commands on the shared connection, naming r:acquire()", function()
    local r <close> = redis.connect(srv.url)
    for _, cmd in ipairs { { "blpop", "q", 0 }, { "brpop", "q", 0 }, { "blmove", "a", "b", "LEFT", "LEFT", 0 },
      { "bzpopmin", "z", 0 }, { "wait", 0, 0 }, { "xread", "block", 0, "streams", "s", "$" } } do
      local ok, err = pcall(r.call, r, table.unpack(cmd))
      assert.is_false(ok)
      assert.matches("r:acquire%(%)", tostring(err))
    end
    local ok, err = pcall(r.subscribe, r)
    assert.is_false(ok)
    ok, err = pcall(r.call, r, "SUBSCRIBE", "x")
    assert.matches("use r:subscribe%(%)", tostring(err))
    ok, err = pcall(r.call, r, "MULTI")
    assert.matches("r:transaction", tostring(err))
    ok, err = pcall(r.select, r, 1)
    assert.matches("db in the URL", tostring(err))
    assert.equal("PONG", r:ping())
    -- XREAD without BLOCK is fine
    r:xadd("s", "*", "f", "v")
    assert.equal("s", r:xread("COUNT", 1, "STREAMS", "s", "0")[1][1])
  end)

  it_fds("runs BLPOP on a dedicated connection while other tasks use the shared one", function()
    local r <close> = redis.connect(srv.url)
    r:del("jobs")
    local popper = aio.create_task(function()
      local c <close> = r:acquire()
      return c:blpop("jobs", 5)
    end)
    H.settle()
    assert.equal(1, r:rpush("jobs", "job1"))
    assert.same({ "jobs", "job1" }, aio.await(popper))
  end)

  it_fds("closes a connection returned after SELECT, WATCH or with a reply still due", function()
    local r <close> = redis.connect(srv.url, { pool_size = 2 })
    r:set("db0", "yes")
    do
      local c <close> = r:acquire()
      c:select(3)
      assert.is_nil(c:get("db0"))
    end
    do
      local c <close> = r:acquire()
      assert.equal("yes", c:get("db0")) -- not the SELECTed one
      c:watch("db0")
    end
    local t = aio.create_task(function()
      local c <close> = r:acquire()
      return c:blpop("never", 5)
    end)
    H.settle()
    t:cancel()
    H.assert_cancelled(t)
    local c <close> = r:acquire()
    assert.equal("yes", c:get("db0"))
    c:multi()
    c:incr("m")
    assert.same({ 1 }, c:exec())
    assert.is_true(client_count(srv) <= 2)
  end)

  it_fds("raises a clear error after release and after close", function()
    local r = redis.connect(srv.url)
    local c = r:acquire()
    c:release()
    c:release() -- twice is fine
    assert.has_error(function() c:get("x") end)
    r:close()
    local ok, err = pcall(r.get, r, "x")
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.InvalidStateError))
    r:close()
  end)

  it_fds("gives commands waiting on a closing client an error", function()
    local r = redis.connect(srv.url, { pool_size = 1 })
    local c = r:acquire()
    local t = aio.create_task(function() return r:acquire() end)
    local sleeper = aio.create_task(function() return c:call("DEBUG", "SLEEP", "0.1") end)
    H.settle()
    r:close()
    local ok, err = pcall(aio.await, t)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.InvalidStateError))
    ok, err = pcall(aio.await, sleeper)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.ConnectionAbortedError), tostring(err))
  end)
end)
