-- Seed 004 (notes on asyncio), the sanic routes: `/<user>` answers JSON, typed parameters
-- (`<n:number>`), a parameter with a pattern (sanic's regex `[A-z0-9]{0,4}` is a Lua pattern
-- here), and routes added with add_route and a methods list. The example queries each route with
-- aloop's client and prints what came back.
local aio = require "aloop"
local http = require "aloop.http"
io.stdout:setvbuf("line")

local app = http.App {}

app:get("/<user>", function(req, user) return http.json { hello = user } end)
app:get("/number/<number_arg:number>", function(req, n) return ("number: %s"):format(n) end)
app:get("/folder/<folder_id:%w?%w?%w?%w?>", function(req, id) return "folder: " .. id end)

local function handler2(req, name) return "folder2: " .. name end
local function personal_handler2(req, name) return "personal2: " .. name end
app:add_route("/folder2/<name>", handler2)
app:add_route("/personal2/<name:%a+>", personal_handler2, { methods = { "GET" } })

aio.run(function()
  local srv <close> = http.serve(app, "127.0.0.1", 0)
  local base = "http://127.0.0.1:" .. srv:port()
  for _, path in ipairs { "/aloop", "/number/3.14", "/folder/ab12", "/folder/toolong",
      "/folder2/docs", "/personal2/ann", "/personal2/a1" } do
    local r <close> = http.get(base .. path)
    print(("GET %-16s %d %s"):format(path, r.status, r:read()))
  end
  local r <close> = http.post(base .. "/personal2/ann")
  print(("POST %-15s %d %s"):format("/personal2/ann", r.status, r.headers.allow))
end)
