-- Lua-stack overflows that ASan cannot see (liblua is not instrumented; valgrind reports
-- "Invalid write", a plain build "corrupted size vs. prev_size"): a callback scheduled with
-- 100+ arguments was pushed without lua_checkstack, writelines() from a fresh coroutine pushed
-- up to 64 strings, and a coroutine object's forged count (c.n = -3) reached lua_xmove as a
-- negative count. Now the stack is grown first, and n is checked, never trusted: a forged one is
-- a clear aloop error.
local aio = require "aloop"
local H = require "spec.helper"

describe("regress: Lua stack use in C", function()
  it("runs a callback with 300 arguments", function()
    local out, err, code = H.aloop_script([[
      local aio = require "aloop"
      local loop = aio.new_event_loop()
      local args = {}
      for i = 1, 300 do args[i] = i end
      local got
      loop:call_soon(function(...) got = select("#", ...) + select(300, ...) end, table.unpack(args))
      loop:run_until_complete(aio.sleep, 0)
      loop:close()
      print(got)
    ]])
    assert.equal(0, code, err)
    assert.equal("600\n", out)
  end)

  it("writes 200 lines with writelines from a task's first step", H.async(function(loop)
    local a, b = aio.socket.socketpair()
    local reader, writer = aio.open_connection(nil, nil, { sock = a })
    local lines = {}
    for i = 1, 200 do lines[i] = ("%03d\n"):format(i) end
    local t = loop:create_task(function() writer:writelines(lines) writer:drain() end)
    aio.await(t)
    local peer_r, peer_w = aio.open_connection(nil, nil, { sock = b })
    assert.equal(table.concat(lines), peer_r:readexactly(800))
    writer:close()
    peer_w:close()
  end))

  it("refuses coroutine objects with a forged argument count", H.async(function(loop)
    local c = aio.coro(function(...) return select("#", ...) end, 1, 2)
    for _, forged in ipairs { -3, 2 ^ 40, "2", 1.5 } do
      c.n = forged
      local ok, err = pcall(loop.create_task, loop, c)
      assert.is_false(ok)
      assert.matches("aloop: malformed coroutine object %(bad argument count%)", tostring(err))
    end
    c.n = 2
    assert.equal(2, aio.await(loop:create_task(c)))
  end))
end)
