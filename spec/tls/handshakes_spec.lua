-- Many TLS connections in a row (aloop client and server, full handshakes): no fd left open and
-- no memory kept (the ASan run of scripts/test checks C leaks at exit; here the Lua heap and the
-- fds are compared), whether the connections end cleanly, fail verification or are aborted.
local aio = require "aloop"
local T = require "spec.tls_helper"

local it_fds = T.it_fds(it, 300)
local H = require "spec.helper"

describe("TLS handshakes", function()
  setup(function() T.pki() end)

  it_fds("1,000 handshakes leave no fd and no memory behind", function()
    local served = 0
    local sctx, cctx = T.server_ctx(), T.client_ctx()
    local server = aio.start_server(function(r, w)
      w:write(r:readline())
      w:close()
      served = served + 1
    end, "127.0.0.1", 0, { ssl = sctx })
    local port = server.sockets[1]:getsockname()[2]
    local function one(i)
      local r, w = aio.open_connection("127.0.0.1", port, { ssl = cctx })
      w:write(i .. "\n")
      assert.equal(i .. "\n", r:readline())
      w:close()
      w:wait_closed()
    end
    for i = 1, 50 do one(i) end -- warm up: caches, the default verify paths
    collectgarbage()
    collectgarbage()
    local fds, mem = H.fd_count(), collectgarbage("count")
    for i = 1, 1000 do
      if i % 100 == 0 then -- some fail verification, some are aborted mid-handshake
        local ok = pcall(aio.open_connection, "127.0.0.1", port,
          { ssl = cctx, server_hostname = "wrong.example" })
        assert.is_false(ok)
        local task = aio.create_task(aio.open_connection, "127.0.0.1", port, { ssl = cctx })
        aio.sleep(0)
        task:cancel()
        pcall(aio.await, task)
      else
        one(i)
      end
    end
    -- The server's side of the last connections closes after the client's: wait for that
    -- (bounded), then every fd must be back where it was.
    for _ = 1, 500 do
      collectgarbage()
      if H.fd_count() <= fds then break end
      aio.sleep(0.01)
    end
    collectgarbage()
    collectgarbage()
    assert.equal(fds, H.fd_count())
    local grown = collectgarbage("count") - mem
    assert.is_true(grown < 512, ("the Lua heap grew by %.0f KiB"):format(grown))
    assert.is_true(served >= 1040)
    server:close()
    server:wait_closed()
  end)
end)
