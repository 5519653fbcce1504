-- Out of fds (EMFILE), accept reports to the exception handler and then arms a retry timer on
-- the listener. A handler that closed the server released the listener first, so the timer
-- fired on freed memory (a use-after-free under ASan). Now accept stops once the report
-- finds the server closed: no timer is armed. Runs in a child interpreter (fds exhausted there).
local H = require "spec.helper"

describe("regress: a server closed by the exception handler during EMFILE", function()
  it("stops accepting without a retry timer on the released listener", function()
    local script = H.tmpfile([[
      local aio = require "aloop"
      local S = aio.socket
      print(aio.run(function()
        local loop = aio.get_running_loop()
        local server = loop:create_server(function() return {} end, "127.0.0.1", 0)
        local port = server.sockets[1]:getsockname()[2]
        local reported = loop:create_future()
        loop:set_exception_handler(function(_, ctx)
          server:close()
          if not reported:done() then reported:set_result(ctx.message) end
        end)
        local client = S.socket(S.AF_INET, S.SOCK_STREAM)
        local fill = {}
        while true do -- use up every fd but none: accept then fails with EMFILE
          local f = io.open("/dev/null")
          if not f then break end
          fill[#fill + 1] = f
        end
        pcall(loop.sock_connect, loop, client, { "127.0.0.1", port }) -- reset once closed
        local msg = aio.wait_for(reported, 10)
        for _, f in ipairs(fill) do f:close() end
        server = nil
        collectgarbage(); collectgarbage()
        aio.sleep(0.35) -- past the retry delay (0.1 s) three times
        client:close()
        return msg
      end))
    ]])
    local out, err, code = H.capture("ulimit -n 64; " .. H.q(H.bin) .. " " .. H.q(script))
    os.remove(script)
    assert.equal(0, code, err)
    assert.equal("socket.accept() out of system resource\n", out)
  end)
end)
