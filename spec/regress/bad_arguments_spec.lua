-- Bad arguments that were silently misread: reader:read(0/0) read to EOF (NaN failed the
-- "n >= 0" test), an argv or env string holding "\0" was cut short at it by exec,
-- new_event_loop{backend = {}} said "bad argument #-1". Each is now a clear aloop error.
local aio = require "aloop"
local H = require "spec.helper"

describe("regress: bad arguments that were misread", function()
  it("refuses read(NaN) and read(1.5), and leaves the data to read", H.async(function(loop)
    local a, b = aio.socket.socketpair()
    local reader, writer = aio.open_connection(nil, nil, { sock = a })
    b:send("hello")
    for _, n in ipairs { 0 / 0, 1.5, "x" } do
      local ok, err = pcall(reader.read, reader, n)
      assert.is_false(ok)
      assert.matches("aloop.StreamReader:read: an integer size expected", tostring(err))
    end
    assert.equal("hello", reader:readexactly(5))
    writer:close()
    b:close()
  end))

  it("refuses program arguments and environment values with a zero byte", H.async(function()
    local ok, err = pcall(aio.create_subprocess_exec, "echo", "a\0b")
    assert.is_false(ok)
    assert.matches("argument 2 of the program contains an embedded zero byte", tostring(err))
    ok, err = pcall(aio.create_subprocess_exec, "true", { env = { X = "a\0b" } })
    assert.is_false(ok)
    assert.matches("environment variable 'X' contains an embedded zero byte", tostring(err))
  end))

  it("says what is wrong with a backend that is not a string", function()
    local ok, err = pcall(aio.new_event_loop, { backend = {} })
    assert.is_false(ok)
    assert.matches("aloop.new_event_loop: backend must be a string, got table", tostring(err))
  end)
end)
