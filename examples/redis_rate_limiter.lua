-- A fixed-window rate limiter: each client may make LIMIT requests per WINDOW seconds, the
-- window starting at its first request. One MULTI/EXEC (r:transaction) INCRs the client's
-- counter and gives it an expiry unless it has one (EXPIRE ... NX), so the count and the
-- window never part. Usage: [redis://host:port/db]
local aio = require "aloop"
local redis = require "aloop.redis"

local url = arg[1] or "redis://127.0.0.1:6379/0"
local LIMIT, WINDOW = 3, 60

-- true when the request is allowed; the count so far in this window.
local function allow(r, client)
  local key = "rate:" .. client
  local res = r:transaction(function(tx)
    tx:incr(key)
    tx:expire(key, WINDOW, "NX")
  end)
  return res[1] <= LIMIT, res[1]
end

aio.run(function()
  local r <close> = redis.connect(url)
  local keys = r:keys("rate:*")
  if #keys > 0 then r:del(table.unpack(keys)) end
  for _, client in ipairs { "alice", "alice", "bob", "alice", "alice", "alice", "bob" } do
    local ok, count = allow(r, client)
    print(("%-5s request %d: %s"):format(client, count, ok and "allowed" or "limited (429)"))
  end
end)
