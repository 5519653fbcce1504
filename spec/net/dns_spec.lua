-- Name resolution (src/net/dns.c, socket.c): loop:getaddrinfo/getnameinfo. Literal addresses and
-- "localhost" resolve without any thread; other names on the loop's DNS threads, whose results
-- come back through the loop's ev_async. Failures raise OSError with .gai_error.
local aio = require "aloop"
local H = require "spec.helper"

local function loop() return aio.get_running_loop() end

-- This machine's name: resolvable without a network (/etc/hosts or nss-myhostname).
local function hostname()
  local f = assert(io.open("/proc/sys/kernel/hostname"))
  local name = f:read("l")
  f:close()
  return name
end

describe("DNS", function()
  it("literal addresses and localhost resolve at once; names need the DNS threads", H.async(function()
    local core = require "aloop.core"
    assert.is_table(core._getaddrinfo("10.1.2.3", 1))
    assert.is_table(core._getaddrinfo("fe80::1", 1))
    assert.is_table(core._getaddrinfo("localhost", 1))
    assert.is_table(core._getaddrinfo(nil, 1, nil, nil, true))
    assert.is_nil(core._getaddrinfo("example.invalid", 1)) -- nil: ask the threads
    local r = loop():getaddrinfo("127.0.0.1", 80)
    assert.are.equal(1, #r)
    assert.are.equal("127.0.0.1:80", tostring(r[1].addr))
    assert.are.equal(aio.socket.AF_INET, r[1].family)
    assert.are.equal("::1", loop():getaddrinfo("::1", 443)[1].addr[1])
    assert.are.equal("127.0.0.1", loop():getaddrinfo("localhost", 1)[1].addr[1])
    assert.are.equal("::1", loop():getaddrinfo("localhost", 1, { family = "inet6" })[1].addr[1])
    local any = loop():getaddrinfo(nil, 8080, { passive = true, family = "inet" })
    assert.are.equal("0.0.0.0", any[1].addr[1])
  end))

  it("a name goes to the DNS threads and comes back through the loop", H.async(function()
    local hostname = hostname()
    local r = loop():getaddrinfo(hostname, 22)
    assert.is_true(#r >= 1)
    assert.are.equal(22, r[1].addr[2])
  end))

  it("DNS failure: OSError with gai_error and strerror", H.async(function()
    local ok, err = pcall(loop().getaddrinfo, loop(), "no-such-host.invalid", 80)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.OSError), tostring(err))
    assert.is_number(err.gai_error)
    assert.is_string(err.strerror)
    assert.matches("no%-such%-host%.invalid", err.message)
  end))

  it("create_connection and open_connection report an unresolvable host", H.async(function()
    local ok, err = pcall(aio.open_connection, "no-such-host.invalid", 80)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.OSError), tostring(err))
  end))

  it("bad address strings for a socket's family raise OSError", H.async(function()
    local s <close> = aio.socket.socket("inet")
    local ok, err = pcall(s.bind, s, { "1.2.3", 0 })
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.OSError), tostring(err))
    ok = pcall(s.bind, s, { "127.0.0.1", 70000 })
    assert.is_false(ok)
  end))

  it("many lookups at once all complete (a pool of threads)", H.async(function()
    local hostname = hostname()
    local tasks = {}
    for i = 1, 20 do
      tasks[i] = aio.create_task(function() return #loop():getaddrinfo(hostname, i) end)
    end
    local results = aio.gather(table.unpack(tasks))
    assert.are.equal(20, #results)
    for _, n in ipairs(results) do assert.is_true(n >= 1) end
  end))

  it("getnameinfo: host and service of an address", H.async(function()
    local host, service = loop():getnameinfo({ "127.0.0.1", 8080 })
    assert.is_string(host)
    assert.are.equal("8080", service)
  end))

  it("closing the loop with a lookup in flight drops it safely", function()
    local l = aio.new_event_loop()
    local hostname = hostname()
    local fut = l:run_until_complete(function()
      return require("aloop.core")._dns_getaddrinfo(aio.get_running_loop(), hostname, 1)
    end)
    l:close()
    assert.is_false(fut:done())
  end)
end)
