-- The C half of aloop.redis (src/redis/codec.c, encode.c) on its own, without a server: a batch
-- encodes and counts its commands, and the codec and batch methods refuse anything but their own
-- object with an error naming the type they expected.
require "aloop"
local redis = require "aloop.redis"
local core = require "aloop.core"
local H = require "spec.helper"
local raises = H.raises_text

describe("aloop.redis codec and batch", function()
  it("a batch counts the commands it encodes and clears", function()
    local b = core._redis.batch()
    assert.equal(1, b:add("SET", "k", "v"))
    assert.equal(2, b:add("GET", "k"))
    assert.equal(2, b:count())
    b:clear()
    assert.equal(0, b:count())
    raises("command name expected", b.add, b, 42)
  end)

  it("batch methods refuse a value that is not a batch", function()
    H.with_loop(function(loop)
      local b = core._redis.batch()
      local codec = core._redis.codec(loop, redis.ReplyError, redis.null)
      raises("aloop.redis.Batch expected, got number", b.add, 42, "GET")
      raises("aloop.redis.Batch expected, got aloop.redis.Codec", b.count, codec)
      raises("aloop.redis.Batch expected, got FILE*", b.clear, io.stdout)
    end)
  end)

  it("codec methods refuse a value that is not a codec, and a batch that is not one", function()
    H.with_loop(function(loop)
      local codec = core._redis.codec(loop, redis.ReplyError, redis.null)
      local b = core._redis.batch()
      raises("aloop.redis.Codec expected, got aloop.redis.Batch", codec.feed, b, "+OK\r\n")
      raises("aloop.redis.Codec expected, got nil", codec.pending, nil)
      raises("aloop.redis.Codec expected, got aloop.Loop", codec.take, loop)
      raises("aloop.redis.Batch expected, got table", codec.send_batch, codec, {})
      assert.equal(0, codec:pending())
      assert.is_false(loop:is_closed())
    end)
  end)
end)
