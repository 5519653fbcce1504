-- URL helpers of aloop.http: parse absolute http URLs, resolve redirects, percent-encoding and
-- query strings (a=1&b=2 <-> tables).
local url = {}

local function unescape(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end
url.unescape = unescape

function url.escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- parse_query("a=1&b=2&b=3") -> {a="1", b={"2", "3"}} (a repeated name gives a list)
function url.parse_query(qs)
  local t = {}
  if not qs or qs == "" then return t end
  for pair in qs:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    if not k then k, v = pair, "" end
    k, v = unescape(k), unescape(v)
    local old = t[k]
    if old == nil then t[k] = v
    elseif type(old) == "table" then old[#old + 1] = v
    else t[k] = { old, v } end
  end
  return t
end

-- encode_query{a=1, b={"x","y"}} -> "a=1&b=x&b=y" (keys sorted: stable output)
function url.encode_query(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    if type(v) == "table" then
      for _, x in ipairs(v) do parts[#parts + 1] = url.escape(k) .. "=" .. url.escape(x) end
    else
      parts[#parts + 1] = url.escape(k) .. "=" .. url.escape(v)
    end
  end
  return table.concat(parts, "&")
end

-- parse("http://host:port/path?q") -> {scheme=, host=, port=, target=, authority=}
function url.parse(s)
  if type(s) ~= "string" then error("aloop.http: a URL string expected, got " .. type(s), 3) end
  local scheme, rest = s:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then error(("aloop.http: not an absolute URL: %q"):format(s), 3) end
  scheme = scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then
    error(("aloop.http: unsupported URL scheme %q"):format(scheme), 3)
  end
  local authority, target = rest:match("^([^/?#]*)(.*)$")
  target = target:gsub("#.*$", "")
  if target == "" then target = "/" elseif target:sub(1, 1) == "?" then target = "/" .. target end
  authority = authority:gsub("^.*@", "") -- userinfo is not sent
  local host, port = authority:match("^%[(.+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]*):?(%d*)$") end
  if not host or host == "" then error(("aloop.http: no host in URL %q"):format(s), 3) end
  local default = scheme == "https" and 443 or 80
  port = tonumber(port) or default
  return {
    scheme = scheme, host = host, port = port, target = target,
    authority = port == default and authority:gsub(":%d*$", "") or authority,
  }
end

-- join(base, ref): ref resolved against base (absolute, //host, /path, relative path, ?query)
function url.join(base, ref)
  if ref:match("^%a[%w+.-]*://") then return ref end
  local scheme, authority, path = base:match("^(%a[%w+.-]*)://([^/?#]*)([^?#]*)")
  if ref:sub(1, 2) == "//" then return scheme .. ":" .. ref end
  if ref:sub(1, 1) == "/" then return scheme .. "://" .. authority .. ref end
  if ref:sub(1, 1) == "?" then return scheme .. "://" .. authority .. (path ~= "" and path or "/") .. ref end
  local dir = path:match("^(.*/)") or "/"
  local segs = {}
  for seg in (dir .. ref):gmatch("[^/]*") do segs[#segs + 1] = seg end
  local out = {}
  for i, seg in ipairs(segs) do
    if seg == ".." then if #out > 1 then out[#out] = nil end
    elseif seg ~= "." or i == #segs then out[#out + 1] = seg == "." and "" or seg end
  end
  return scheme .. "://" .. authority .. table.concat(out, "/")
end

return url
