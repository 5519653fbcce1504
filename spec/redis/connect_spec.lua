-- aloop.redis connections against real redis-servers: redis:// URLs, AUTH (password and ACL
-- user) and SELECT on every new connection, clear errors for refused connections, wrong
-- passwords and silent peers (connect timeout), the server killed and restarted (errors, then
-- recovery on the next command, subscriptions restored with a "reconnected" message), and no
-- fd left behind over many connects.
local aio = require "aloop"
local redis = require "aloop.redis"
local parse_url = require("aloop.redis.url").parse
local H = require "spec.helper"
local R = require "spec.redis_helper"
local N = require "spec.net_helper"
local it_fds = N.it_fds(it)

describe("aloop.redis URLs", function()
  it("parses host, port, db, user and password", function()
    assert.same({ host = "127.0.0.1", port = 6379, db = 0 }, parse_url("redis://"))
    assert.same({ host = "h", port = 7000, db = 3 }, parse_url("redis://h:7000/3"))
    assert.same({ host = "::1", port = 6380, db = 0 }, parse_url("redis://[::1]:6380"))
    assert.same({ host = "h", port = 6379, db = 2, username = "al", password = "p@ss:w" },
      parse_url("redis://al:p%40ss:w@h/2"))
    assert.same({ host = "h", port = 6379, db = 0, password = "secret" }, parse_url("redis://:secret@h"))
    assert.same({ host = "h", port = 6379, db = 5, timeout = 2.5 },
      parse_url("redis://h?db=5&timeout=2.5"))
    assert.same({ path = "/tmp/r.sock", db = 1 }, parse_url("unix:///tmp/r.sock?db=1"))
    assert.is_true(parse_url("rediss://h").ssl)
  end)

  it("refuses what it cannot use", function()
    assert.has_error(function() redis.connect("http://h") end,
      'aloop.redis: unsupported URL "http://h" (redis://, rediss:// or unix://)')
    assert.has_error(function() redis.connect("redis://h/x") end, 'aloop.redis: bad db in URL "redis://h/x"')
    assert.has_error(function() redis.connect("redis://h", { ssl = "yes" }) end,
      "aloop.redis: ssl must be true, false or an aio.ssl context")
    assert.has_error(function() redis.connect("redis://h", { pool_size = 0 }) end,
      "aloop.redis: pool_size must be a positive integer")
    assert.has_error(function() redis.connect("redis://h", 5) end,
      "aloop.redis: connect: options must be a table")
    assert.has_error(function() redis.connect("redis://h", { timeout = -1 }) end,
      "aloop.redis: timeout must be a positive number")
  end)
end)

describe("aloop.redis connections", function()
  local srv
  setup(function() srv = R.server() end)
  teardown(function() srv:stop() end)

  it_fds("selects the URL's database on every connection", function()
    local r0 <close> = redis.connect(srv.url)
    local r5 <close> = redis.connect((srv.url:gsub("/0$", "/5")), { pool_size = 2 })
    r5:set("where", "five")
    assert.is_nil(r0:get("where"))
    local c <close> = r5:acquire() -- a second connection: SELECT too
    assert.equal("five", c:get("where"))
    assert.equal("five", srv:cli("-n 5 get where"):match("%S+"))
  end)

  it("connects on the first command when made outside a task; aio.redis is the module", function()
    assert.equal(redis, aio.redis)
    local r = redis.connect(srv.url)
    local before = N.socket_count()
    H.run(function()
      assert.equal("PONG", r:ping())
      r:close()
    end)
    assert.equal(before, N.socket_count())
    assert.has_error(function() r:ping() end) -- closed
  end)

  it("lets another task connect when the task connecting is cancelled", function()
    local client = redis.connect((srv.url:gsub("/0$", "/2")), { pool_size = 1 }) -- not connected yet
    H.run(function()
      local t1 = aio.create_task(function() return client:ping() end)
      local t2 = aio.create_task(function() return client:ping() end)
      aio.sleep(0) -- t1 is connecting (connect, SELECT), t2 waits for it
      t1:cancel()
      H.assert_cancelled(t1)
      assert.equal("PONG", aio.await(t2))
      client:close()
    end)
  end)

  it_fds("raises ConnectionRefusedError when nothing listens, then connects later", function()
    local s = aio.socket.socket("inet")
    s:bind({ "127.0.0.1", 0 })
    local port = s:getsockname()[2]
    s:close()
    local ok, err = pcall(redis.connect, ("redis://127.0.0.1:%d"):format(port))
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.ConnectionRefusedError), tostring(err))
    local r <close> = redis.connect(srv.url)
    assert.equal("PONG", r:ping())
  end)

  it_fds("gives up after connect_timeout on a peer that never answers", function()
    local server = aio.get_running_loop():create_server(function() return {} end, "127.0.0.1", 0)
    local port = server.sockets[1]:getsockname()[2]
    local ok, err = pcall(redis.connect, ("redis://127.0.0.1:%d/1"):format(port), { connect_timeout = 0.05 })
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.TimeoutError), tostring(err))
    server:close()
    server:wait_closed()
  end)

  it_fds("reports a peer that does not speak RESP and drops the connection", function()
    local server = aio.get_running_loop():create_server(function()
      return { connection_made = function(_, tr) tr:write("HTTP/1.1 400 Bad\r\n\r\n") end }
    end, "127.0.0.1", 0)
    local port = server.sockets[1]:getsockname()[2]
    local r <close> = redis.connect(("redis://127.0.0.1:%d"):format(port))
    local ok, err = pcall(r.ping, r)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.ConnectionError), tostring(err))
    assert.matches("protocol error", tostring(err))
    r:close()
    server:close()
    server:wait_closed()
  end)

  it_fds("survives a peer announcing a huge array and closing (no allocation up front)", function()
    local server = aio.get_running_loop():create_server(function()
      return {
        connection_made = function(self, tr) self.tr = tr end,
        data_received = function(self) self.tr:write("*2000000000\r\n:1\r\n"); self.tr:close() end,
      }
    end, "127.0.0.1", 0)
    local port = server.sockets[1]:getsockname()[2]
    local r <close> = redis.connect(("redis://127.0.0.1:%d"):format(port))
    local ok, err = pcall(r.get, r, "k")
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.ConnectionResetError), tostring(err))
    assert.matches("the server closed the connection", tostring(err))
    server:close()
    server:wait_closed()
  end)

  it("leaves no fd behind over 10,000 connects", function()
    local before = N.socket_count()
    -- its own time limit: under ASan on a busy machine this takes longer than the default
    require("aloop.busted").run(function()
      for i = 1, 10000 do
        local r <close> = redis.connect(srv.url)
        if i % 1000 == 0 then assert.equal("PONG", r:ping()) end
      end
    end, { timeout = 180 })
    assert.equal(before, N.socket_count())
  end)

end)

describe("aloop.redis AUTH", function()
  local srv
  setup(function()
    srv = R.server { password = "s3cret" }
    srv:cli("acl setuser app on '>apppass' '~app:*' '+@all'")
  end)
  teardown(function() srv:stop() end)

  it_fds("authenticates with a password or a user, and reports bad ones", function()
    local r <close> = redis.connect((srv.url:gsub("//", "//:s3cret@")))
    assert.equal("PONG", r:ping())
    local a <close> = redis.connect(srv.url, { username = "app", password = "apppass" })
    assert.equal("OK", a:set("app:x", 1))
    local ok, err = pcall(a.set, a, "other", 1)
    assert.equal("NOPERM", err.code)
    ok, err = pcall(redis.connect, srv.url, { password = "wrong" })
    assert.is_false(ok)
    assert.equal("WRONGPASS", err.code)
    local n <close> = redis.connect(srv.url)
    ok, err = pcall(n.get, n, "k")
    assert.is_false(ok)
    assert.equal("NOAUTH", err.code)
  end)
end)

describe("aloop.redis after the server died", function()
  local srv
  setup(function() srv = R.server() end)
  teardown(function() srv:stop() end)

  it_fds("raises connection errors, then recovers once the server is back", function()
    local r <close> = redis.connect(srv.url)
    local sub <close> = r:subscribe("events")
    sub:psubscribe("ev.*")
    r:set("k", "before")
    local pending = aio.create_task(function() return r:call("DEBUG", "SLEEP", "1") end)
    aio.sleep(0)
    srv:kill()
    local ok, err = pcall(aio.await, pending)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.ConnectionError), tostring(err))
    ok, err = pcall(r.get, r, "k") -- reconnects: nothing listens
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.ConnectionRefusedError), tostring(err))
    ok, err = pcall(sub.get_message, sub) -- the drop, reported once
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.ConnectionError), tostring(err))
    ok, err = pcall(sub.get_message, sub) -- the reconnect fails
    assert.is_true(aio.iserror(err, aio.ConnectionRefusedError), tostring(err))
    srv:restart()
    assert.is_nil(r:get("k")) -- a new server, no persistence
    assert.equal("OK", r:set("k", "after"))
    assert.same({ type = "reconnected" }, sub:get_message(5))
    assert.equal(2, r:publish("ev.x", "hi") + r:publish("events", "there"))
    assert.equal("hi", sub:get_message(5).data)
    assert.equal("there", sub:get_message(5).data)
  end)
end)

describe("aloop.redis over TLS (rediss://)", function()
  local T = require "spec.tls_helper"
  local srv, tls_port, pki
  setup(function()
    pki = T.pki()
    tls_port = R.free_port()
    srv = R.server { args = ("--tls-port %d --tls-cert-file %s/server.pem --tls-key-file %s/server.key"
      .. " --tls-ca-cert-file %s/ca.pem --tls-auth-clients no"):format(tls_port, pki, pki, pki) }
  end)
  teardown(function() srv:stop() end)

  local function ctx()
    local c = aio.ssl.create_default_context()
    c:load_verify_locations(pki .. "/ca.pem")
    return c
  end

  it_fds("runs commands, pipelines and pub/sub over a verified TLS connection", function()
    local r <close> = redis.connect(("rediss://localhost:%d/0"):format(tls_port), { ssl = ctx() })
    assert.equal("OK", r:set("tls:k", "v"))
    assert.equal("v", r:get("tls:k"))
    local res = r:pipeline(function(p) p:incr("tls:n"); p:incr("tls:n") end)
    assert.same({ 1, 2 }, { res[1], res[2] })
    local sub <close> = r:subscribe("tls:ch")
    srv:cli("publish tls:ch hello")
    local m = sub:get_message(5)
    assert.equal("hello", m.data)
  end)

  it_fds("refuses a server whose certificate it cannot verify", function()
    -- the default context trusts only the system CAs: the test CA is unknown to it
    local ok, err = pcall(redis.connect, ("rediss://localhost:%d"):format(tls_port))
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.SSLCertVerificationError), tostring(err))
  end)
end)
