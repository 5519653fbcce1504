-- Lesson: a TaskGroup must account for every cancel and every error (asyncio 3.13). A broken
-- version (1) lost a cancel() from outside that arrived while a child was failing: the group
-- withdrew its own cancel, raised the child's error, and the task ran on as if never
-- cancelled (CPython gh-116720); (2) left cancelling() at 1 after nested groups that both
-- failed (the outer group withdrew its cancel only when it saw a CancelledError); (3) kept the
-- first of several errors and dropped the rest. Now the outside cancel stays requested (the
-- next suspension raises CancelledError), nested groups leave cancelling() == 0, and several
-- errors are raised as one aio.ExceptionGroup with `.exceptions` in the order they failed.
local aio = require "aloop"
local H = require "spec.helper"

describe("regression: TaskGroup errors and cancels", function()
  it("keeps an outside cancel that arrives while a child fails", H.async(function()
    local me
    local t = aio.create_task(function()
      me = aio.current_task()
      local ok, err = pcall(function()
        local tg <close> = aio.TaskGroup()
        tg:create_task(function()
          aio.sleep(0)
          error("child failed")
        end)
        tg:create_task(function()
          aio.sleep(0)
          me:cancel() -- from outside the group, while the first child's failure is handled
          aio.sleep(10)
        end)
        aio.sleep(10)
      end)
      assert.is_false(ok)
      assert.matches("child failed", tostring(err))
      assert.equal(1, me:cancelling())
      aio.sleep(10) -- the next suspension raises CancelledError
      return "ran on"
    end)
    local ok, err = pcall(aio.await, t)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.CancelledError), tostring(err))
    assert.is_true(t:cancelled())
  end))

  it("nested groups that both fail leave cancelling() at 0", H.async(function()
    local ok, err = pcall(function()
      local outer <close> = aio.TaskGroup()
      outer:create_task(function()
        aio.sleep(0)
        error("outer child")
      end)
      local inner <close> = aio.TaskGroup()
      inner:create_task(function()
        aio.sleep(0)
        error("inner child")
      end)
      aio.sleep(10)
    end)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.ExceptionGroup), tostring(err))
    assert.equal(0, aio.current_task():cancelling())
    aio.sleep(0) -- and no cancel is left pending
  end))

  it("raises every error of several children as an ExceptionGroup, in order", H.async(function()
    local ok, err = pcall(function()
      local tg <close> = aio.TaskGroup()
      tg:create_task(function() error(aio.QueueFull("first")) end)
      tg:create_task(function() error("second") end)
    end)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.ExceptionGroup))
    assert.equal(2, #err.exceptions)
    assert.is_true(aio.iserror(err.exceptions[1], aio.QueueFull))
    assert.matches("second", err.exceptions[2])
    assert.is_true(aio.iserror(err, aio.QueueFull)) -- a member is a QueueFull
    assert.is_false(aio.iserror(err, aio.QueueEmpty))
    assert.matches("2 sub%-exceptions", tostring(err))
  end))

  it("re-raises a single failure as it is", H.async(function()
    local ok, err = pcall(function()
      local tg <close> = aio.TaskGroup()
      tg:create_task(function() error(aio.QueueEmpty("only")) end)
      tg:create_task(aio.sleep, 10)
    end)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.QueueEmpty))
    assert.is_false(aio.iserror(err, aio.ExceptionGroup))
  end))
end)
