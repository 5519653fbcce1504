-- http.App: routes (app:get/post/put/patch/delete/route), middleware (app:use), lifecycle hooks
-- (app:on "startup"/"shutdown") and app:run{}, which serves until SIGINT or SIGTERM and then
-- shuts down gracefully, in this process or (workers = N) in N processes under the supervisor
-- of `aloop --workers` (API.md §15). The limits and timeouts given to http.App{} apply to its
-- server.
local aio = require "aloop"
local core = require "aloop.core"
local worker = require "aloop.workers.worker"
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

-- The grace period app:run{workers=} gives the supervisor, and the shutdown timeout: in a
-- worker, not longer than the supervisor waits before it kills the worker.
local function shutdown_timeout(opts)
  local t = opts.shutdown_timeout
  if t ~= nil and (type(t) ~= "number" or t < 0) then
    error("aloop.http.App:run: shutdown_timeout must be a number >= 0", 3)
  end
  t = t or 30
  if worker.grace and worker.grace < t then t = worker.grace end
  return t
end

-- workers = N (0: one per CPU) outside a supervisor: this script again, under one (no return).
local function supervise(workers, timeout)
  if math.type(workers) ~= "integer" or workers < 0 or workers > 4096 then
    error("aloop.http.App:run: workers must be an integer from 0 (one per CPU) to 4096", 3)
  end
  if core._running_loop() then
    error(("aloop.http.App:run: workers = %d must be called outside a running loop")
      :format(workers), 3)
  end
  local _, why = worker.supervise(workers, timeout)
  error("aloop.http.App:run: workers = " .. workers .. " cannot start the supervisor: " .. why, 3)
end

-- run{host=, port=, ssl=, workers=, shutdown_timeout=30, ready=fn(srv)}: serves until SIGINT or
-- SIGTERM (blocks), then srv:shutdown(shutdown_timeout) and the "shutdown" hooks. workers = N
-- (N ~= 1; 0: one per CPU) in a plain `aloop app.lua` execs `aloop --workers N --grace
-- shutdown_timeout app.lua args...`: the same script runs in N workers, where app:run serves
-- on the listening socket the supervisor bound once for host and port. Under a supervisor
-- workers= is not looked at (the command line's --workers counts), and SIGINT is left to the
-- supervisor (it stops the workers with SIGTERM).
function App:run(opts)
  opts = opts or {}
  local timeout = shutdown_timeout(opts)
  if opts.workers ~= nil and opts.workers ~= 1 and not aio.worker.id then
    supervise(opts.workers, timeout)
  end
  local app = self
  local signals = aio.worker.id and { "SIGTERM" } or { "SIGINT", "SIGTERM" }
  return aio.run(function()
    local loop = aio.get_running_loop()
    for _, fn in ipairs(app.hooks.startup) do fn(app) end
    local srv = server.serve(app, opts.host or "127.0.0.1", opts.port or 8080, opts)
    local stop = loop:create_future()
    local function on_signal() if not stop:done() then stop:set_result() end end
    for _, sig in ipairs(signals) do loop:add_signal_handler(sig, on_signal) end
    if opts.ready then opts.ready(srv) end
    aio.await(stop)
    for _, sig in ipairs(signals) do loop:remove_signal_handler(sig) end
    srv:shutdown(timeout)
    for _, fn in ipairs(app.hooks.shutdown) do fn(app) end
  end)
end

setmetatable(App, { __call = function(_, settings) return new(settings) end })

return App
