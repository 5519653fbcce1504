-- bench/http: aloop's client, N keep-alive GETs from C tasks against URL; prints the seconds.
-- Usage: http_client.lua URL N C
local aio = require "aloop"
local http = require "aloop.http"

local url, n, c = arg[1], tonumber(arg[2]), tonumber(arg[3])
aio.run(function()
  local s <close> = http.Session { limit = c, limit_per_host = c }
  local left = n
  local t0 = aio.get_running_loop():time()
  local tasks = {}
  for i = 1, c do
    tasks[i] = aio.create_task(function()
      while left > 0 do
        left = left - 1
        local r = s:get(url)
        assert(r.status == 200 and #r:read() > 0)
      end
    end)
  end
  aio.gather(tasks)
  print(("%.3f"):format(aio.get_running_loop():time() - t0))
end)
