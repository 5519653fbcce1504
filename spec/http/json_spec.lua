-- aloop.json (aio.json) over lua-cjson: round trips, null, array() for empty and sparse arrays,
-- clear errors for bad input.
local aio = require "aloop"
local json = require "aloop.json"

describe("aio.json", function()
  it("is the same module as require 'aloop.json'", function()
    assert.equal(json, aio.json)
  end)

  it("round-trips values; JSON null is json.null", function()
    local v = json.decode('{"a":[1,2.5,"x",true,null],"b":{}}')
    assert.same({ 1, 2.5, "x", true, json.null }, v.a)
    assert.equal(json.null, v.a[5])
    assert.same({ a = { 1, 2 } }, json.decode(json.encode { a = { 1, 2 } }))
    assert.equal("null", json.encode(json.null))
  end)

  it("encodes array() tables as arrays even when empty or sparse", function()
    assert.equal("{}", json.encode {})
    assert.equal("[]", json.encode(json.array()))
    assert.equal('{"list":[]}', json.encode { list = json.array {} })
    local sparse = json.array { [1] = "a", [30] = "b" }
    local back = json.decode(json.encode(sparse))
    assert.equal(30, #back)
    assert.equal("b", back[30])
    assert.equal(json.null, back[2])
    assert.has_error(function() json.encode(json.array { x = 1 }) end)
  end)

  it("raises clear errors on malformed text and bad arguments", function()
    local ok, err = pcall(json.decode, "{bad")
    assert.is_false(ok)
    assert.truthy(tostring(err):find("aloop.json.decode", 1, true))
    assert.has_error(function() json.decode(42) end)
    assert.has_error(function() json.encode(function() end) end)
  end)
end)
