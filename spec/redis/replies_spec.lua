-- aloop.redis replies and arguments against a real redis-server: every RESP reply type (status,
-- error, integer, bulk incl. binary-safe and empty, nil, arrays nested, nil inside arrays as
-- redis.null), error replies as redis.ReplyError with the connection still usable, and bad
-- arguments refused before anything is sent.
local aio = require "aloop"
local redis = require "aloop.redis"
local R = require "spec.redis_helper"
local it_fds = require("spec.net_helper").it_fds(it)

describe("aloop.redis replies", function()
  local srv
  setup(function() srv = R.server() end)
  teardown(function() srv:stop() end)

  it_fds("maps status, integer and bulk replies to Lua values", function()
    local r <close> = redis.connect(srv.url)
    assert.equal("PONG", r:ping())
    assert.equal("OK", r:set("k", "v"))
    assert.equal("v", r:get("k"))
    assert.is_nil(r:get("missing"))
    assert.equal(1, r:del("k"))
    assert.equal(0, r:exists("k"))
    assert.equal(-5, r:incrby("n", -5))
    assert.equal(math.tointeger(2 ^ 62), r:incrby("big", math.tointeger(2 ^ 62)))
    assert.equal("string", r:type("n"))
    assert.equal("none", r:type("missing"))
    assert.equal("2.5", r:incrbyfloat("f", 2.5))
  end)

  it_fds("is binary-safe and keeps empty strings", function()
    local r <close> = redis.connect(srv.url)
    local bin = {}
    for i = 0, 255 do bin[#bin + 1] = string.char(i) end
    bin = table.concat(bin) .. "\r\n$3\r\n*1\r\n" .. ("\0"):rep(1000)
    r:set("bin", bin)
    assert.equal(bin, r:get("bin"))
    r:set("empty", "")
    assert.equal("", r:get("empty"))
    local big = ("x"):rep(3 * 1024 * 1024 + 7)
    r:set("big", big)
    assert.equal(#big, r:strlen("big"))
    assert.equal(big, r:get("big"))
    r:del("l")
    r:rpush("l", "", bin, "a")
    assert.same({ "", bin, "a" }, r:lrange("l", 0, -1))
  end)

  it_fds("builds arrays, nested arrays and redis.null for nil elements", function()
    local r <close> = redis.connect(srv.url)
    r:mset("a", "1", "c", "3")
    local got = r:mget("a", "b", "c")
    assert.equal(3, #got)
    assert.equal("1", got[1])
    assert.equal(redis.null, got[2])
    assert.equal("3", got[3])
    assert.same({}, r:lrange("nothing", 0, -1))
    local nested = r:eval("return {1, {2, {3, 'x', {}}}, 'y', {'z'}}", 0)
    assert.same({ 1, { 2, { 3, "x", {} } }, "y", { "z" } }, nested)
    -- deeper than most replies: seven levels
    local deep = r:eval("return {{{{{{{7}}}}}}}", 0)
    assert.equal(7, deep[1][1][1][1][1][1][1])
    assert.equal("redis.null", tostring(redis.null))
    assert.has_error(function() redis.null.x = 1 end)
  end)

  it_fds("raises error replies as redis.ReplyError with .code; the connection stays usable", function()
    local r <close> = redis.connect(srv.url)
    r:set("s", "text")
    local ok, err = pcall(r.lpush, r, "s", "x")
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, redis.ReplyError))
    assert.is_true(aio.iserror(err, aio.Error))
    assert.equal("WRONGTYPE", err.code)
    assert.matches("^redis.ReplyError: WRONGTYPE", tostring(err))
    ok, err = pcall(r.call, r, "NOSUCHCOMMAND", "x")
    assert.is_false(ok)
    assert.equal("ERR", err.code)
    assert.matches("unknown command", err.message)
    ok, err = pcall(r.eval, r, "return redis.error_reply('my error')", 0)
    assert.equal("ERR", err.code) -- a message without an upper-case code
    assert.equal("my error", err.message)
    -- errors nested in an array are values, not raised
    local arr = r:eval("return {1, redis.error_reply('MYCODE inner'), 3}", 0)
    assert.equal(1, arr[1])
    assert.equal("MYCODE", arr[2].code)
    assert.equal(3, arr[3])
    assert.equal("text", r:get("s"))
    assert.equal("PONG", r:ping())
  end)

  it_fds("encodes integers, floats and strings; refuses other arguments without sending", function()
    local r <close> = redis.connect(srv.url)
    r:set("i", 42)
    assert.equal("42", r:get("i"))
    r:set("f", 0.1)
    assert.equal(0.1, tonumber(r:get("f")))
    r:set("neg", math.mininteger)
    assert.equal(tostring(math.mininteger), r:get("neg"))
    local ok, err = pcall(r.set, r, "k", { 1 })
    assert.is_false(ok)
    assert.matches("argument 2 of SET must be a string or a number, got table", tostring(err))
    ok, err = pcall(r.set, r, "k", true)
    assert.matches("got boolean", tostring(err))
    ok, err = pcall(r.call, r, nil)
    assert.matches("command name expected", tostring(err))
    assert.equal("42", r:get("i")) -- nothing half-encoded went out
    assert.equal("PONG", r:call("ping")) -- names in any case
  end)
end)
