-- Lesson: asyncio code builds protocols and tests on a StreamReader it feeds by hand
-- (StreamReader(limit) with feed_data, feed_eof, set_exception). A broken version had no
-- public constructor: aio.StreamReader was only the class of readers open_connection made,
-- so such code had nothing to port to. Now aio.StreamReader([limit]) makes a reader that no
-- stream feeds, with the same read methods as any other.
local aio = require "aloop"
local H = require "spec.helper"

describe("regression: a public StreamReader fed by hand", function()
  it("reads what feed_data gives, waiting for more, until feed_eof", H.async(function()
    local r = aio.StreamReader()
    r:feed_data("first line\nsec")
    assert.equal("first line\n", r:readline())
    local t = aio.create_task(r.readline, r)
    aio.sleep(0)
    assert.is_false(t:done())
    r:feed_data("ond line\ntail")
    assert.equal("second line\n", aio.wait_for(t, 5))
    assert.is_false(r:at_eof())
    r:feed_eof()
    assert.equal("tail", r:read(-1))
    assert.is_true(r:at_eof())
    local ok, err = pcall(r.feed_data, r, "late")
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.InvalidStateError))
  end))

  it("honours its limit", H.async(function()
    local r = aio.StreamReader(4)
    r:feed_data("abcdefgh\n")
    local ok, err = pcall(r.readline, r)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.LimitOverrunError), tostring(err))
    assert.is_false(pcall(aio.StreamReader, 0))
    assert.is_false(pcall(aio.StreamReader, "x"))
  end))

  it("set_exception makes a waiting and every later read raise it", H.async(function()
    local r = aio.StreamReader()
    local t = aio.create_task(r.readexactly, r, 10)
    aio.sleep(0)
    local boom = aio.ConnectionResetError("peer went away")
    r:set_exception(boom)
    local ok, err = pcall(aio.await, t)
    assert.is_false(ok)
    assert.equal(boom, err)
    assert.equal(boom, r:exception())
    assert.is_false(pcall(r.read, r, 1))
  end))
end)
