-- Lesson: an argument error must blame the caller's line and name the function the caller
-- called. A broken version raised "lua/aloop/subprocess.lua:274: ... unknown option" (the
-- check ran a few calls deep inside the library, so a fixed error level pointed into it) and
-- "aloop.create_connection: host and port are required" for a call of open_connection.
local aio = require "aloop"
local H = require "spec.helper"

local this_file = "error_blame_spec.lua"

describe("regression: argument errors", function()
  it("of create_subprocess_exec blame the caller's line", H.async(function()
    for _, call in ipairs {
      function() aio.create_subprocess_exec("true", { bogus = 1 }) end,
      function() aio.create_subprocess_exec({ "true" }, { stdin = "x" }) end,
      function() aio.create_subprocess_exec("true", 1, {}, 2) end,
      function() aio.create_subprocess_shell(42) end,
    } do
      local ok, err = pcall(call)
      assert.is_false(ok)
      assert.matches(this_file .. ":%d+: aloop%.create_subprocess_", err)
    end
  end))

  it("of open_connection name open_connection", H.async(function()
    local ok, err = pcall(function() aio.open_connection("127.0.0.1") end)
    assert.is_false(ok)
    assert.matches(this_file .. ":%d+: aloop%.open_connection: host and port are required", err)
  end))
end)
