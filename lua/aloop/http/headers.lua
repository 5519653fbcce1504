-- Headers tables: names are lowercased once (in C for parsed messages); lookups with any case
-- work through __index, and headers:get_all(name) lists the values of a repeated header.
local headers = {}

local lower = string.lower
local Headers = { __name = "aloop.http.Headers" }

-- The repeated values are listed in headers._multi (parser.c).
local function get_all(h, name)
  name = lower(name)
  local multi = rawget(h, "_multi")
  local list = multi and multi[name]
  if list then return { table.unpack(list) } end
  local v = rawget(h, name)
  if v == nil then return {} end
  return { v }
end

Headers.__index = function(h, k)
  if k == "get_all" then return get_all end
  if type(k) == "string" then
    local l = lower(k)
    if l ~= k then return rawget(h, l) end
  end
end
headers.mt = Headers

-- headers.new(t): a Headers table from a plain table of name = value (any case).
function headers.new(t)
  local h = setmetatable({}, Headers)
  if t then for k, v in pairs(t) do rawset(h, lower(k), v) end end
  return h
end

return headers
