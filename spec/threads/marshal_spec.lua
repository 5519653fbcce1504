-- What crosses between Lua states (src/threads/marshal.c), seen through aio.thread.encode/decode: the
-- values that copy, the ones that cannot and how the error names them, and functions, which
-- cross as bytecode only without upvalues other than _ENV.
local aio = require "aloop"
local enc, dec = aio.thread.encode, aio.thread.decode

local function roundtrip(...) return dec(enc(...)) end

describe("marshal", function()
  it("copies nil, booleans, integers, floats and strings, keeping their types", function()
    local a, b, c, d, e, f, g = roundtrip(nil, true, false, 42, 1.5, "x\0y", math.mininteger)
    assert.is_nil(a)
    assert.is_true(b)
    assert.is_false(c)
    assert.equal("integer", math.type(d))
    assert.equal(42, d)
    assert.equal("float", math.type(e))
    assert.equal(1.5, e)
    assert.equal("x\0y", f)
    assert.equal(math.mininteger, g)
  end)

  it("keeps trailing nils in the count of values", function()
    assert.equal(3, select("#", roundtrip(1, nil, nil)))
  end)

  it("copies nested tables with string, number and boolean keys", function()
    local t = { 1, 2, { x = "y", [true] = false }, n = 3.25, [10] = "ten" }
    assert.are.same(t, (roundtrip(t)))
  end)

  it("copies a table reached twice as two copies (not a cycle)", function()
    local shared = { 1 }
    local t = roundtrip({ a = shared, b = shared })
    assert.are.same({ 1 }, t.a)
    assert.are_not.equal(t.a, t.b)
  end)

  it("refuses a function value, naming where it is", function()
    local ok, err = pcall(enc, 1, { list = { 5, print } })
    assert.is_false(ok)
    assert.matches("value 2%.list%[2%] is a function; only nil, booleans, numbers, strings and tables", err)
  end)

  it("refuses userdata and coroutines", function()
    assert.error_matches(function() enc(io.stdout) end, "value 1 is a userdata")
    assert.error_matches(function() enc(coroutine.create(print)) end, "value 1 is a thread")
  end)

  it("refuses a table that contains itself", function()
    local t = { a = {} }
    t.a.back = t
    assert.error_matches(function() enc(t) end, "value 1%.a%.back is a table that contains itself %(a cycle%)")
  end)

  it("refuses a table key that is a table", function()
    assert.error_matches(function() enc({ [{}] = 1 }) end, "is a table key that cannot cross")
  end)

  it("refuses malformed bytes", function()
    assert.error_matches(function() dec("\255") end, "malformed marshalled data")
    assert.error_matches(function() dec("s") end, "malformed marshalled data")
  end)
end)

describe("functions that cross", function()
  local pool
  setup(function() pool = aio.executor.ThreadPool(1) end)
  teardown(function() pool:shutdown() end)

  it("run with globals (_ENV is the worker's)", function()
    assert.equal("3", pool:submit(function(x) return tostring(x + 1) end, 2):result())
  end)

  it("are refused with an upvalue, and the error names it and where the function is", function()
    local n = 1
    local ok, err = pcall(pool.submit, pool, function() return n end)
    assert.is_false(ok)
    assert.matches("the function %(a function defined at .-marshal_spec%.lua:%d+%) uses the upvalue 'n'", err)
  end)

  it("are refused when written in C", function()
    assert.error_matches(function() pool:submit(print) end, "is a C function")
  end)

  it("are refused as arguments", function()
    assert.error_matches(function() pool:submit(function() end, function() end) end,
      "argument 1 is a function")
  end)

  it("are refused as results, with an error from the worker", function()
    local f = pool:submit(function() return print end)
    assert.error_matches(function() f:result() end, "a result of the function: value 1 is a function")
  end)
end)
