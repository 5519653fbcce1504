-- loop:add_reader(99999, fn) (or an fd just closed) was accepted, and the next iteration
-- aborted the process on libev's "I/O watcher with invalid fd" assertion. Now the fd is checked
-- (fcntl F_GETFD) when the watcher is added: OSError EBADF, and the loop keeps running.
local aio = require "aloop"
local H = require "spec.helper"

describe("regress: add_reader/add_writer of an fd that is not open", function()
  it("raises OSError(EBADF) for a number that is no fd and for a closed fd", H.async(function(loop)
    local a, b = aio.socket.socketpair()
    local fd = a:fileno()
    a:close()
    for _, bad in ipairs { 99999, fd } do
      for _, method in ipairs { "add_reader", "add_writer" } do
        local ok, err = pcall(loop[method], loop, bad, function() end)
        assert.is_false(ok)
        assert.is_true(aio.iserror(err, aio.OSError), tostring(err))
        assert.equal(9, err.errno) -- EBADF
      end
    end
    b:close()
    aio.sleep(0) -- the loop iterates on
  end))

  it("does not abort a child interpreter that tries", function()
    local out, err, code = H.aloop_script([[
      local aio = require "aloop"
      local loop = aio.new_event_loop()
      print(pcall(loop.add_reader, loop, 99999, print))
      loop:run_until_complete(aio.sleep, 0)
      loop:close()
    ]])
    assert.equal(0, code, err)
    assert.matches("^false\tOSError: %[Errno 9%]", out)
  end)
end)
