-- Debug mode's slow-callback report covers the callbacks libev runs directly, as it covers the
-- ready queue's: a slow protocol method (data_received) of a transport and a slow protocol
-- factory of a server are logged with what ran; outside debug mode nothing is.
local aio = require "aloop"
local H = require "spec.helper"

local capture, busy = H.capture_log, H.busy

local function slow_ones(records)
  local found = {}
  for _, r in ipairs(records) do
    if r.msg:find("^Executing") then found[#found + 1] = r end
  end
  return found
end

-- The record whose message matches pattern (other callbacks may be slow on a loaded machine).
local function find(records, pattern)
  for _, r in ipairs(records) do
    if r.msg:find(pattern) then return r end
  end
end

-- A socketpair: a transport whose data_received busies for `secs`, fed one message.
local function slow_data_received(debug, secs)
  return capture(function()
    H.run(function(loop)
      loop:set_debug(debug)
      loop.slow_callback_duration = 0.02
      local a, b = aio.socket.socketpair()
      local got = loop:create_future()
      local tr = loop:connect_accepted_socket(function()
        return { data_received = function(_, d) busy(secs); got:set_result(d) end }
      end, a)
      b:send("x")
      assert.equal("x", aio.wait_for(got, 5))
      tr:close()
      b:close()
      aio.sleep(0)
    end)
  end)
end

describe("slow transport callbacks", function()
  it("a slow data_received is logged in debug mode, naming the method and the transport", function()
    local r = find(slow_data_received(true, 0.05), "^Executing protocol%.data_received%(%) of "
      .. "<aloop%.Transport fd=%d+> took 0%.%d%d%d seconds$")
    assert.is_truthy(r)
    assert.equal("warning", r.level)
  end)

  it("nothing is logged outside debug mode", function()
    assert.equal(0, #slow_ones(slow_data_received(false, 0.05)))
  end)

  it("a slow protocol factory of a server is logged in debug mode", function()
    local records = capture(function()
      H.run(function(loop)
        loop:set_debug(true)
        loop.slow_callback_duration = 0.02
        local made = loop:create_future()
        local server = loop:create_server(function()
          busy(0.05)
          return { connection_made = function(_, tr) made:set_result(tr) end }
        end, "127.0.0.1", 0)
        local port = server.sockets[1]:getsockname()[2]
        local r, w = aio.open_connection("127.0.0.1", port)
        aio.wait_for(made, 5):close()
        assert.equal("", r:read(-1))
        w:close()
        server:close()
        server:wait_closed()
      end)
    end)
    assert.is_truthy(find(records, "^Executing the accept callback of <aloop%.Listener fd=%d+> "
      .. "took 0%.%d%d%d seconds$"))
  end)
end)
