-- Datagram endpoints (loop:create_datagram_endpoint over the datagram mode of src/net/transport.c):
-- datagram_received(data, addr), sendto with and without a remote address, error_received,
-- local_addr/remote_addr/reuse_port/allow_broadcast, close. Sockets are counted.
local aio = require "aloop"
local it_fds = require("spec.net_helper").it_fds(it)

local function loop() return aio.get_running_loop() end

-- An endpoint on 127.0.0.1 that echoes every datagram upper-cased; returns transport, port.
local function upper_echo(opts)
  opts = opts or {}
  opts.local_addr = opts.local_addr or { "127.0.0.1", 0 }
  local tr = loop():create_datagram_endpoint(function()
    return {
      connection_made = function(self, t) self.t = t end,
      datagram_received = function(self, d, addr) self.t:sendto(d:upper(), addr) end,
    }
  end, opts)
  return tr, tr:get_extra_info("sockname")[2]
end

-- A client protocol collecting datagrams; p:next() waits for the next one.
local function collector()
  local p = { q = {}, errors = {} }
  function p:wake() if self.w and not self.w:done() then self.w:set_result() end end
  function p:datagram_received(d, addr) self.q[#self.q + 1] = { d, addr }; self:wake() end
  function p:error_received(err) self.errors[#self.errors + 1] = err; self:wake() end
  function p:connection_lost(err) self.lost = true; self.lost_err = err end
  function p:next()
    while #self.q == 0 and #self.errors == 0 do
      self.w = loop():create_future()
      aio.wait_for(self.w, 5)
      self.w = nil
    end
    return table.remove(self.q, 1)
  end
  return p
end

describe("UDP", function()
  it_fds("echo through two endpoints: sendto(data, addr) and datagram_received(data, addr)", function()
    local server, port = upper_echo()
    local p = collector()
    local client = loop():create_datagram_endpoint(function() return p end,
      { local_addr = { "127.0.0.1", 0 } })
    client:sendto("first", { "127.0.0.1", port })
    client:sendto("second", { "127.0.0.1", port })
    local a, b = p:next(), p:next()
    assert.are.same({ "FIRST", "SECOND" }, { a[1], b[1] })
    assert.are.equal(port, a[2][2])
    assert.is_false(client:can_write_eof())
    client:close()
    server:close()
    aio.sleep(0)
    assert.is_true(p.lost)
    assert.is_nil(p.lost_err)
  end)

  it_fds("remote_addr: a connected endpoint sends without an address and rejects one", function()
    local server, port = upper_echo()
    local p = collector()
    local client = loop():create_datagram_endpoint(function() return p end,
      { remote_addr = { "127.0.0.1", port } })
    assert.are.equal(port, client:get_extra_info("peername")[2])
    client:sendto("connected")
    assert.are.equal("CONNECTED", p:next()[1])
    assert.has_error(function() client:sendto("x", { "127.0.0.1", port }) end)
    client:close()
    server:close()
  end)

  it_fds("a connected endpoint can send from connection_made", function()
    local server, port = upper_echo()
    local p = collector()
    p.connection_made = function(_, t) t:sendto("early") end
    local client = loop():create_datagram_endpoint(function() return p end,
      { remote_addr = { "127.0.0.1", port } })
    assert.are.equal("EARLY", p:next()[1])
    client:close()
    server:close()
  end)

  it_fds("an unconnected endpoint needs an address", function()
    local tr = loop():create_datagram_endpoint(function() return {} end,
      { local_addr = { "127.0.0.1", 0 } })
    assert.has_error(function() tr:sendto("x") end)
    assert.has_error(function() tr:write("x") end)
    tr:close()
  end)

  it_fds("ICMP port unreachable on a connected endpoint: error_received(ConnectionRefusedError)", function()
    local s = aio.socket.socket("inet", aio.socket.SOCK_DGRAM)
    s:bind({ "127.0.0.1", 0 })
    local port = s:getsockname()[2]
    s:close()
    local p = collector()
    local tr = loop():create_datagram_endpoint(function() return p end,
      { remote_addr = { "127.0.0.1", port } })
    tr:sendto("anyone?")
    p:next()
    assert.is_true(aio.iserror(p.errors[1], aio.ConnectionRefusedError), tostring(p.errors[1]))
    assert.is_false(tr:is_closing()) -- the endpoint stays usable
    tr:close()
  end)

  it_fds("reuse_port lets two endpoints bind the same port; allow_broadcast sets SO_BROADCAST", function()
    local a = loop():create_datagram_endpoint(function() return {} end,
      { local_addr = { "127.0.0.1", 0 }, reuse_port = true, allow_broadcast = true })
    local port = a:get_extra_info("sockname")[2]
    local b = loop():create_datagram_endpoint(function() return {} end,
      { local_addr = { "127.0.0.1", port }, reuse_port = true })
    assert.are.equal(port, b:get_extra_info("sockname")[2])
    local ok, err = pcall(loop().create_datagram_endpoint, loop(), function() return {} end,
      { local_addr = { "127.0.0.1", port } })
    assert.is_false(ok)
    assert.are.equal(98, err.errno) -- EADDRINUSE without reuse_port
    a:close()
    b:close()
  end)

  it_fds("IPv6 and 'localhost' endpoints", function()
    local server, port = upper_echo({ local_addr = { "::1", 0 } })
    local p = collector()
    local client = loop():create_datagram_endpoint(function() return p end,
      { remote_addr = { "::1", port } })
    client:sendto("six")
    assert.are.equal("SIX", p:next()[1])
    client:close()
    server:close()
    local s2, port2 = upper_echo({ local_addr = { "localhost", 0 } })
    local p2 = collector()
    local c2 = loop():create_datagram_endpoint(function() return p2 end,
      { remote_addr = { "localhost", port2 } })
    c2:sendto("local")
    assert.are.equal("LOCAL", p2:next()[1])
    c2:close()
    s2:close()
  end)

  it_fds("sendto after close is dropped; close twice is harmless", function()
    local tr = loop():create_datagram_endpoint(function() return {} end,
      { local_addr = { "127.0.0.1", 0 } })
    tr:close()
    tr:close()
    tr:sendto("x", { "127.0.0.1", 9 }) -- dropped without an error, as asyncio does
    assert.are.equal(0, tr:get_write_buffer_size())
  end)

  it_fds("a datagram_received that raises is reported and aborts that endpoint only", function()
    local reports = {}
    loop():set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
    local lost = loop():create_future()
    local bad = loop():create_datagram_endpoint(function()
      return {
        datagram_received = function() error("bad datagram") end,
        connection_lost = function(_, e) lost:set_result(e) end,
      }
    end, { local_addr = { "127.0.0.1", 0 } })
    local server, port = upper_echo()
    local p = collector()
    local c = loop():create_datagram_endpoint(function() return p end, { local_addr = { "127.0.0.1", 0 } })
    c:sendto("x", bad:get_extra_info("sockname"))
    assert.matches("bad datagram", tostring(aio.wait_for(lost, 5)))
    c:sendto("still", { "127.0.0.1", port })
    assert.are.equal("STILL", p:next()[1])
    assert.are.equal(1, #reports)
    c:close()
    server:close()
  end)
end)
