-- aio.thread.decode read nested tables by recursion without the encoder's depth limit: a string
-- of a million "t" bytes (a table inside a table inside ...) overflowed the C stack and killed
-- the process. A table key that decodes to nil or NaN raised Lua's own "index is nil" instead of
-- saying the bytes are malformed (found by spec/fuzz/thread_decode.c), and decode loaded
-- bytecode from any string given to it. Now: depth is bounded like the encoder's, bad keys and
-- functions are malformed data, each a clear aloop error.
local aio = require "aloop"
local H = require "spec.helper"

describe("regress: aio.thread.decode of hostile bytes", function()
  it("refuses tables nested a million deep with a clear error", function()
    -- In a child interpreter: the old crash must not take the test run with it.
    local out, err, code = H.capture(H.q(H.bin) .. [[ -e 'print(pcall(require("aloop").thread.decode, ("t"):rep(1e6)))']])
    assert.equal(0, code, err)
    assert.matches("^false\taloop: marshalled data nested too deeply", out)
  end)

  it("still decodes nesting the encoder allows", function()
    local t = {}
    for _ = 1, 150 do t = { t } end
    local back = aio.thread.decode(aio.thread.encode(t))
    for _ = 1, 150 do back = back[1] end
    assert.same({}, back)
  end)

  it("calls a nil or NaN key malformed data", function()
    for _, bytes in ipairs { "tnnne", "t" .. "d" .. string.pack("d", 0/0) .. "Te" } do
      local ok, err = pcall(aio.thread.decode, bytes)
      assert.is_false(ok)
      assert.matches("aloop: malformed marshalled data %(a nil or NaN table key%)", tostring(err))
    end
  end)

  it("loads no bytecode from outside", function()
    local dumped = string.dump(function() return 1 end)
    local bytes = "f" .. string.pack("T", #dumped) .. dumped
    local ok, err = pcall(aio.thread.decode, bytes)
    assert.is_false(ok)
    assert.matches("malformed marshalled data %(a function%)", tostring(err))
  end)
end)
