-- The server's router: paths with parameters ("/users/<id:int>", converters int, number, path,
-- a Lua pattern, or none: one segment). Static paths are one table lookup; the others are tried
-- in the order they were added. match() tells 404 (no path) from 405 (path, not the method).
local router = {}

local Router = {}
Router.__index = Router

function router.new()
  return setmetatable({ static = {}, dynamic = {} }, Router)
end

local converters = {
  int = { "(%-?%d+)", math.tointeger },
  number = { "(%-?%d+%.?%d*)", tonumber },
  path = { "(.+)" },
  string = { "([^/]+)" },
}

-- compile("/a/<x:int>") -> Lua pattern, {names}, {convert functions}, or nil for a static path
local function compile(path)
  if not path:find("<", 1, true) then return nil end
  local pat, names, convs, pos = { "^" }, {}, {}, 1
  while true do
    local s, e, spec = path:find("<([^>]*)>", pos)
    pat[#pat + 1] = path:sub(pos, (s or 0) - 1):gsub("%p", "%%%0")
    if not s then break end
    local name, conv = spec:match("^([%a_][%w_]*):?(.*)$")
    if not name then error(("aloop.http: bad route parameter <%s> in %q"):format(spec, path), 4) end
    local c = converters[conv ~= "" and conv or "string"]
    if c then
      pat[#pat + 1] = c[1]
      convs[#names + 1] = c[2] or false
    else -- a Lua pattern of the user's
      if not pcall(string.find, "", conv) then
        error(("aloop.http: bad pattern in route parameter <%s>"):format(spec), 4)
      end
      pat[#pat + 1] = "(" .. conv .. ")"
      convs[#names + 1] = false
    end
    names[#names + 1] = name
    pos = e + 1
  end
  pat[#pat + 1] = "$"
  return table.concat(pat), names, convs
end

-- add(path, handler, methods): methods is a list ("GET" also answers HEAD) or nil for any.
function Router:add(path, handler, methods)
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    error("aloop.http: a route path starts with /, got " .. tostring(path), 3)
  end
  local pattern, names, convs = compile(path)
  local route
  if pattern then
    for _, r in ipairs(self.dynamic) do if r.path == path then route = r end end
    if not route then
      route = { path = path, pattern = pattern, names = names, convs = convs, methods = {} }
      self.dynamic[#self.dynamic + 1] = route
    end
  else
    route = self.static[path]
    if not route then
      route = { path = path, methods = {} }
      self.static[path] = route
    end
  end
  if methods == nil then
    route.any = handler
  else
    for _, m in ipairs(methods) do
      m = m:upper()
      route.methods[m] = handler
      if m == "GET" and not route.methods.HEAD then route.methods.HEAD = handler end
    end
  end
end

local function allowed(route)
  local list = {}
  for m in pairs(route.methods) do list[#list + 1] = m end
  table.sort(list)
  return table.concat(list, ", ")
end

-- match(method, path) -> handler, params, values... | nil, 404 | nil, 405, allow
function Router:match(method, path)
  local route = self.static[path]
  if route then
    local h = route.methods[method] or route.any
    if h then return h end
    return nil, 405, allowed(route)
  end
  local seen
  for _, r in ipairs(self.dynamic) do
    local caps = { path:match(r.pattern) }
    if caps[1] then
      local h = r.methods[method] or r.any
      local params = {}
      for i, name in ipairs(r.names) do
        local conv = r.convs[i]
        local v = caps[i]
        if conv then v = conv(v) end
        if v == nil then caps = nil break end
        caps[i] = v
        params[name] = v
      end
      if caps then
        if h then return h, params, table.unpack(caps, 1, #r.names) end
        seen = seen or r
      end
    end
  end
  if seen then return nil, 405, allowed(seen) end
  return nil, 404
end

return router
