-- aloop.redis pub/sub against a real redis-server: messages published by redis-cli and by the
-- client, pattern subscriptions, order kept, unsubscribe, get_message(timeout), the
-- sub:messages() iterator, and a subscriber's own connection (the shared one stays usable).
local aio = require "aloop"
local redis = require "aloop.redis"
local H = require "spec.helper"
local R = require "spec.redis_helper"
local it_fds = require("spec.net_helper").it_fds(it)

describe("aloop.redis pub/sub", function()
  local srv
  setup(function() srv = R.server() end)
  teardown(function() srv:stop() end)

  it_fds("receives what redis-cli publishes, in order", function()
    local r <close> = redis.connect(srv.url)
    local sub <close> = r:subscribe("news", "sport")
    assert.equal("1", (srv:cli("publish news first"):match("%d+")))
    srv:cli("publish sport second")
    srv:cli("publish other ignored")
    srv:cli("publish news third")
    local got = {}
    for m in sub:messages() do
      got[#got + 1] = m.channel .. "=" .. m.data
      assert.equal("message", m.type)
      if #got == 3 then break end
    end
    assert.same({ "news=first", "sport=second", "news=third" }, got)
    assert.is_nil(sub:get_message(0.01))
  end)

  it_fds("delivers pattern messages with their pattern; binary data intact", function()
    local r <close> = redis.connect(srv.url)
    local sub <close> = r:psubscribe("user.*")
    sub:subscribe("plain")
    local payload = "a\0b\r\n" .. ("z"):rep(100000)
    assert.equal(1, r:publish("user.42", payload))
    r:publish("plain", "p")
    local m = sub:get_message(5)
    assert.same({ type = "pmessage", pattern = "user.*", channel = "user.42", data = payload }, m)
    m = sub:get_message(5)
    assert.same({ type = "message", channel = "plain", data = "p" }, m)
  end)

  it_fds("keeps the order of 1,000 messages from concurrent publishers", function()
    local r <close> = redis.connect(srv.url)
    local sub <close> = r:subscribe("seq")
    local pubs = {}
    for t = 1, 4 do
      pubs[t] = aio.create_task(function()
        for i = 1, 250 do r:publish("seq", t .. ":" .. i) end
      end)
    end
    local last = { 0, 0, 0, 0 }
    for _ = 1, 1000 do
      local m = sub:get_message(5)
      local t, i = m.data:match("(%d):(%d+)")
      t, i = tonumber(t), tonumber(i)
      assert.equal(last[t] + 1, i)
      last[t] = i
    end
    aio.gather(pubs)
  end)

  it_fds("stops receiving after unsubscribe and punsubscribe", function()
    local r <close> = redis.connect(srv.url)
    local sub <close> = r:subscribe("a", "b")
    sub:psubscribe("p*")
    sub:unsubscribe("a")
    assert.equal(0, r:publish("a", "x"))
    assert.equal(1, r:publish("b", "y"))
    assert.equal("y", sub:get_message(5).data)
    sub:punsubscribe()
    sub:unsubscribe()
    assert.equal(0, r:publish("b", "z"))
    assert.equal(0, r:publish("pq", "z"))
    sub:subscribe("c")
    r:publish("c", "again")
    assert.equal("again", sub:get_message(5).data)
  end)

  it_fds("wakes a waiting get_message and returns nil on timeout or close", function()
    local r <close> = redis.connect(srv.url)
    local sub = r:subscribe("w")
    local t = aio.create_task(function() return sub:get_message() end)
    H.settle()
    r:publish("w", "wake")
    assert.equal("wake", aio.await(t).data)
    assert.is_nil(sub:get_message(0.01))
    local waiting = aio.create_task(function() return sub:get_message() end)
    H.settle()
    sub:close()
    assert.is_nil(aio.await(waiting))
    assert.is_nil(sub:get_message())
    assert.equal(0, r:publish("w", "nobody"))
  end)

  it_fds("refuses bad names", function()
    local r <close> = redis.connect(srv.url)
    assert.has_error(function() r:subscribe() end, "aloop.redis: subscribe: at least one name expected")
    assert.has_error(function() r:subscribe({}) end, "aloop.redis: subscribe: names must be strings")
  end)
end)
