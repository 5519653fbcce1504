-- bench/http: aloop's hello-world HTTP server (the one wrk measures). Usage: http_server.lua PORT
local aio = require "aloop"
local http = require "aloop.http"

local app = http.App {}
app:get("/", function() return "Hello, world!" end)
app:run { host = "127.0.0.1", port = tonumber(arg[1]), shutdown_timeout = 1 }
