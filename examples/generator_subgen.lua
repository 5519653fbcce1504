-- Seed 004 (Chinese notes on asyncio), "task with async/await" (gen / subgen with yield from).
-- The generator sample with plain Lua coroutines: being stackful, gen() just calls subgen() and
-- subgen's yields pass straight through to whoever resumes gen (what `yield from` does in Python).
local function subgen()
  local i = 0
  while i < 1 do
    local x = coroutine.yield()
    coroutine.yield(x + 1)
    i = i + 1
  end
  return 100
end

local function gen()
  subgen()                                       -- yield from subgen()
  subgen()                                       -- yield from subgen()
end

local function main()
  local g = coroutine.wrap(gen)
  print((g()))                                   -- next(g)    -> nil
  print((g(1)))                                  -- g.send(1)  -> 2
  print((g(1)))                                  -- g.send(1)  -> nil
  print((g(1)))                                  -- g.send(1)  -> 2
end

main()
