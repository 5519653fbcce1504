-- Seed 004 (asyncio notes), "ProcessPoolExecutor" and "Future.executor.map".
-- is_prime in worker processes: submit + as_completed (in completion order), then map (in the
-- order of the list). The functions cross to the workers as bytecode (they have no upvalues).
local aio = require "aloop"

local function is_prime(n)
  local mid = math.floor(math.sqrt(n))
  local flag = true
  for i = 3, mid, 2 do
    if n % i == 0 then
      flag = false
      break
    end
  end
  return flag
end

local nums = { 25, 61, 29, 50, 109 }

do
  local executor <close> = aio.executor.ProcessPool()
  local future_to_num = {}
  for _, n in ipairs(nums) do future_to_num[executor:submit(is_prime, n)] = n end
  for future in aio.executor.as_completed(future_to_num) do
    local data = future:result()
    print(future_to_num[future], data)
  end
end

do
  local executor <close> = aio.executor.ProcessPool()
  for result, i in executor:map(is_prime, nums) do   -- zip(nums, executor.map(is_prime, nums))
    print(("(%d, %s)"):format(nums[i], result))
  end
end
