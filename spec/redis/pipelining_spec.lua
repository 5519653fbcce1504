-- aloop.redis pipelining against a real redis-server: explicit pipelines of 10,000 commands,
-- automatic pipelining of 200 concurrent tasks on one shared connection (each gets its own
-- replies), and cancellation or a command timeout while a reply is due (DEBUG SLEEP holds the
-- server): the late reply is read and dropped, the next command gets its own.
local aio = require "aloop"
local redis = require "aloop.redis"
local H = require "spec.helper"
local R = require "spec.redis_helper"
local it_fds = require("spec.net_helper").it_fds(it)

describe("aloop.redis pipelining", function()
  local srv
  setup(function() srv = R.server() end)
  teardown(function() srv:stop() end)

  it_fds("runs a 10,000-command pipeline in order", function()
    local r <close> = redis.connect(srv.url)
    r:del("cnt")
    local res = r:pipeline(function(p)
      for i = 1, 10000 do
        if i % 2 == 0 then p:incr("cnt") else p:get("cnt") end
      end
    end)
    assert.equal(10000, res.n)
    assert.is_nil(res[1])
    for i = 2, 10000, 2 do assert.equal(i // 2, res[i]) end
    for i = 3, 9999, 2 do assert.equal(tostring(i // 2), res[i]) end
    assert.equal("5000", r:get("cnt"))
    assert.same({ n = 0 }, r:pipeline(function() end))
  end)

  it_fds("raises the first error of a pipeline after reading every reply", function()
    local r <close> = redis.connect(srv.url)
    r:set("s", "x")
    local ok, err = pcall(r.pipeline, r, function(p)
      p:set("a", "1"); p:lpush("s", "y"); p:incr("s"); p:set("b", "2")
    end)
    assert.is_false(ok)
    assert.equal("WRONGTYPE", err.code)
    assert.same({ "1", "2" }, r:mget("a", "b"))
    assert.has_error(function() r:pipeline(function(p) p:blpop("q", 0) end) end,
      "aloop.redis: BLPOP needs a connection of its own: use it on local c <close> = r:acquire()")
  end)

  it_fds("gives each of 200 concurrent tasks its own replies on one connection", function()
    local r <close> = redis.connect(srv.url, { pool_size = 1 })
    local tasks = {}
    for i = 1, 200 do
      tasks[i] = aio.create_task(function()
        local key = "task:" .. i
        for j = 1, 20 do
          r:set(key, i * 1000 + j)
          assert.equal(tostring(i * 1000 + j), r:get(key))
        end
        return r:incr(key)
      end)
    end
    local res = aio.gather(tasks)
    for i = 1, 200 do assert.equal(i * 1000 + 21, res[i]) end
    local clients = srv:cli("client list")
    local _, n = clients:gsub("cmd=", "")
    assert.equal(2, n) -- our one connection and redis-cli's
  end)

  it_fds("drops the reply of a cancelled command and stays in step", function()
    local r <close> = redis.connect(srv.url)
    r:mset("a", "A", "b", "B")
    local sleeper = aio.create_task(function() return r:call("DEBUG", "SLEEP", "0.2") end)
    local victim = aio.create_task(function() return r:get("a") end)
    H.settle() -- both sent; the server sleeps
    victim:cancel()
    H.assert_cancelled(victim)
    assert.equal("B", r:get("b"))
    assert.equal("OK", sleeper:result())
    assert.equal("A", r:get("a"))
  end)

  it_fds("drops a cancelled pipeline's replies and stays in step", function()
    local r <close> = redis.connect(srv.url)
    r:call("DEBUG", "SLEEP", "0") -- connected
    local t = aio.create_task(function()
      return r:pipeline(function(p)
        p:call("DEBUG", "SLEEP", "0.1")
        for i = 1, 100 do p:set("p" .. i, i) end
      end)
    end)
    H.settle()
    t:cancel()
    H.assert_cancelled(t)
    assert.equal("100", r:get("p100"))
  end)

  it_fds("raises TimeoutError after `timeout` and keeps the connection usable", function()
    local r <close> = redis.connect(srv.url, { timeout = 0.05 })
    r:set("t", "ok")
    local ok, err = pcall(r.call, r, "DEBUG", "SLEEP", "0.3")
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.TimeoutError), tostring(err))
    assert.matches("no reply within 0.05s", tostring(err))
    -- the late reply is dropped; once the server is awake again replies match up
    local waited = 0
    while waited < 100 do
      local ok2, v = pcall(r.get, r, "t")
      if ok2 then
        assert.equal("ok", v)
        break
      end
      assert.is_true(aio.iserror(v, aio.TimeoutError))
      waited = waited + 1
    end
    assert.equal("OK", r:set("t", "again"))
    assert.equal("again", r:get("t"))
  end)

  it_fds("works with aio.wait_for around a command", function()
    local r <close> = redis.connect(srv.url)
    local ok, err = pcall(aio.wait_for, function() return r:call("DEBUG", "SLEEP", "0.2") end, 0.02)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.TimeoutError))
    assert.equal("PONG", r:ping())
  end)
end)
