-- Seed 003 (slides "Introduction to asyncio"), "Undoing callbacks".
-- A callback-style API (async_function calls cb(result, err) later) wrapped in a Future, so a task
-- calls it like a plain function. The slide's `if error is not None` is inverted; fixed here.
local aio = require "aloop"

-- The callback API: divides a by b and reports later, from a loop callback.
local function async_function(cb, a, b)
  aio.get_running_loop():call_later(0.05, function()
    if b == 0 then cb(nil, "division by zero") else cb(a / b, nil) end
  end)
end

local function sync_looking_function(...)
  local fut = aio.get_running_loop():create_future()
  local function cb(result, err)
    if err == nil then
      fut:set_result(result)
    else
      fut:set_exception(err)
    end
  end
  async_function(cb, ...)
  return fut:await()
end

local function main()
  print(("6 / 3 = %g"):format(sync_looking_function(6, 3)))
  local ok, err = pcall(sync_looking_function, 1, 0)
  print(("1 / 0 raised: %s"):format(tostring(err)))
end

aio.run(main)
