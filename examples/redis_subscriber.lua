-- Seed 003 ("Introduction to asyncio", the "Redis" slide): a subscriber prints every message
-- published on my-channel. asyncio_redis's start_subscribe() + subscribe(channels) is
-- r:subscribe(...), next_published() is the sub:messages() iterator; a publisher in the same
-- script sends three messages, the last one ends the loop. Usage: [redis://host:port/db]
local aio = require "aloop"
local redis = require "aloop.redis"

local url = arg[1] or "redis://127.0.0.1:6379/0"

local function subscriber(sub)
  for reply in sub:messages() do                 -- wait for incoming events
    print(("Received: '%s' on channel %s"):format(reply.data, reply.channel))
    if reply.data == "bye" then break end
  end
end

aio.run(function()
  local r <close> = redis.connect(url)           -- create the client
  local sub <close> = r:subscribe("my-channel")  -- subscribed once this returns
  local listening = aio.create_task(subscriber, sub)
  for _, text in ipairs { "hello", "world", "bye" } do
    r:publish("my-channel", text)
  end
  listening:await()
end)
