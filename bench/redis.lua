-- aloop's side of the Redis benchmark (bench/redis): SET then GET of N keys against a server on
-- 127.0.0.1:PORT, either from TASKS concurrent tasks sharing one client (automatic pipelining)
-- or as explicit pipelines of SIZE commands. Prints "aloop MODE SET <ops/s> GET <ops/s>".
-- Usage: build/aloop bench/redis.lua PORT tasks TASKS N | PORT pipeline SIZE N
local aio = require "aloop"
local redis = require "aloop.redis"

local port, mode, width, n = tonumber(arg[1]), arg[2], tonumber(arg[3]), tonumber(arg[4])

local function tasks(r, cmd)
  local per = n // width
  local ts = {}
  for t = 1, width do
    ts[t] = aio.create_task(function()
      local base = (t - 1) * per
      if cmd == "SET" then
        for i = base + 1, base + per do r:set("key:" .. i, "xxx") end
      else
        for i = base + 1, base + per do r:get("key:" .. i) end
      end
    end)
  end
  aio.gather(ts)
  return per * width
end

local function pipelines(r, cmd)
  local done = 0
  while done + width <= n do
    local first = done
    if cmd == "SET" then
      r:pipeline(function(p) for i = first + 1, first + width do p:set("key:" .. i, "xxx") end end)
    else
      r:pipeline(function(p) for i = first + 1, first + width do p:get("key:" .. i) end end)
    end
    done = done + width
  end
  return done
end

aio.run(function()
  local r <close> = redis.connect(("redis://127.0.0.1:%d/0"):format(port))
  local run = mode == "tasks" and tasks or pipelines
  local loop = aio.get_running_loop()
  local rates = {}
  for _, cmd in ipairs { "SET", "GET" } do
    local t0 = loop:time()
    local ops = run(r, cmd)
    rates[#rates + 1] = ("%s %.0f"):format(cmd, ops / (loop:time() - t0))
  end
  print(("aloop %s%d %s"):format(mode, width, table.concat(rates, " ")))
end)
