-- http.App: routes (app:get/post/put/patch/delete/route), middleware (app:use), lifecycle hooks
-- (app:on "startup"/"shutdown") and app:run{}, which serves until SIGINT or SIGTERM and then
-- shuts down gracefully. The limits and timeouts given to http.App{} apply to its server.
local aio = require "aloop"
local router = require "aloop.http.router"
local errors = require "aloop.http.errors"
local server = require "aloop.http.server"
local response = require "aloop.http.response"

local App = { __name = "aloop.http.App" }
App.__index = App

local known = {
  client_max_size = true, keepalive_timeout = true, header_timeout = true, body_timeout = true,
  max_header_size = true, max_headers = true, max_connections = true,
}

local function new(settings)
  settings = settings or {}
  for k, v in pairs(settings) do
    if not known[k] then error(("aloop.http.App: unknown setting %q"):format(tostring(k)), 3) end
    if type(v) ~= "number" or v <= 0 then
      error(("aloop.http.App: %s must be a positive number"):format(k), 3)
    end
  end
  return setmetatable({ settings = settings, router = router.new(), middleware = {},
    hooks = { startup = {}, shutdown = {} } }, App)
end

local function check_handler(h)
  if type(h) ~= "function" and not (getmetatable(h) or {}).__call then
    error("aloop.http: a handler function expected, got " .. type(h), 3)
  end
end

-- route(path, handler, {methods = {...}}) (methods default to GET)
function App:route(path, handler, opts)
  check_handler(handler)
  self.router:add(path, handler, opts and opts.methods or { "GET" })
  self.handle = nil
  return self
end
App.add_route = App.route

for _, m in ipairs { "get", "post", "put", "patch", "delete", "head", "options" } do
  local method = m:upper()
  App[m] = function(self, path, handler)
    check_handler(handler)
    self.router:add(path, handler, { method })
    self.handle = nil
    return self
  end
end

-- use(fn): middleware fn(req, next) -> result; next(req) runs the rest of the chain
function App:use(fn)
  check_handler(fn)
  self.middleware[#self.middleware + 1] = fn
  self.handle = nil
  return self
end

-- on("startup" | "shutdown", fn): run (in order, in the serving task) by app:run
function App:on(event, fn)
  local list = self.hooks[event]
  if not list then error(("aloop.http.App:on: unknown event %q"):format(tostring(event)), 2) end
  check_handler(fn)
  list[#list + 1] = fn
  return self
end

-- The function that answers a request: the router behind the middleware chain.
function App:dispatcher()
  if self.handle then return self.handle end
  local r = self.router
  local HTTPError = errors.HTTPError
  local function route(req)
    local h, a, b, c, d = r:match(req.method, req.path)
    if h then
      if a then rawset(req, "params", a) return h(req, b, c, d) end
      return h(req)
    end
    if a == 405 then
      return response.Response { status = 405, headers = { allow = b }, body = "Method Not Allowed" }
    end
    error(HTTPError(404, "Not Found"), 0)
  end
  local handle = route
  for i = #self.middleware, 1, -1 do
    local mw, inner = self.middleware[i], handle
    handle = function(req) return mw(req, inner) end
  end
  self.handle = handle
  return handle
end

-- run{host=, port=, shutdown_timeout=30, ready=fn(srv)}: serves until SIGINT/SIGTERM (blocks)
function App:run(opts)
  opts = opts or {}
  if opts.ssl then error("aloop.http.App:run: ssl= needs aio.ssl, which aloop does not have yet", 2) end
  if opts.workers and opts.workers ~= 1 then
    error("aloop.http.App:run: workers= needs aloop --workers, which is not built yet", 2)
  end
  local app = self
  return aio.run(function()
    local loop = aio.get_running_loop()
    for _, fn in ipairs(app.hooks.startup) do fn(app) end
    local srv = server.serve(app, opts.host or "127.0.0.1", opts.port or 8080, opts)
    local stop = loop:create_future()
    local function on_signal() if not stop:done() then stop:set_result() end end
    loop:add_signal_handler("SIGINT", on_signal)
    loop:add_signal_handler("SIGTERM", on_signal)
    if opts.ready then opts.ready(srv) end
    aio.await(stop)
    loop:remove_signal_handler("SIGINT")
    loop:remove_signal_handler("SIGTERM")
    srv:shutdown(opts.shutdown_timeout or 30)
    for _, fn in ipairs(app.hooks.shutdown) do fn(app) end
  end)
end

setmetatable(App, { __call = function(_, settings) return new(settings) end })

return App
