-- Closing a transport's socket object (tr:get_extra_info("socket"):close(), or the opts.sock
-- that was passed in) closed the fd under the transport, which stayed on that fd number: its
-- writes went to whatever socket reused the number next, and its watcher read that socket's
-- data. The transport owns the fd now: closing its socket object is refused with a clear error
-- (close the transport), and the transport keeps working; once it is closed, the socket's
-- close() is a no-op.
local aio = require "aloop"
local H = require "spec.helper"

describe("regress: a transport's socket object", function()
  it("cannot be closed behind the transport's back", H.async(function()
    local a, b = aio.socket.socketpair()
    local reader, writer = aio.open_connection(nil, nil, { sock = a })
    local peer_r, peer_w = aio.open_connection(nil, nil, { sock = b })
    for _, sock in ipairs { a, writer.transport:get_extra_info("socket") } do
      local ok, err = pcall(sock.close, sock)
      assert.is_false(ok)
      assert.matches("aloop: this socket belongs to a transport: close the transport instead",
        tostring(err))
    end
    -- a new socket made now must not receive the transport's bytes: the fd is still its own
    local c, d = aio.socket.socketpair()
    writer:write("still mine\n")
    assert.equal("still mine\n", peer_r:readline())
    peer_w:write("back\n")
    assert.equal("back\n", reader:readline())
    c:close(); d:close()
    writer:close()
    writer:wait_closed()
    a:close() -- closed by the transport already: a no-op
    peer_w:close()
  end))

  it("cannot be given to a second transport", H.async(function(loop)
    local a, b = aio.socket.socketpair()
    local _, writer = aio.open_connection(nil, nil, { sock = a })
    local ok, err = pcall(aio.open_connection, nil, nil, { sock = a })
    assert.is_false(ok)
    assert.matches("this socket already belongs to a transport", tostring(err))
    writer:close()
    b:close()
  end))
end)
