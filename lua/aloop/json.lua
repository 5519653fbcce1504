-- aloop.json (aio.json, API.md §13): JSON over Debian's lua-cjson. encode, decode, null, and
-- array(t), which marks a table to encode as an array even when it is empty or sparse (cjson
-- alone encodes {} as an object and refuses very sparse arrays).
local cjson = require("cjson").new()
cjson.encode_sparse_array(true) -- a sparse array with holes is an array with nulls, not an error
cjson.encode_invalid_numbers(false)

local json = { null = cjson.null }

local marked = setmetatable({}, { __mode = "k" }) -- tables given to array()
local any_marked = false
-- An empty marked array encodes as this string, replaced by [] in the text afterwards.
local EMPTY = "\0aloop.json.empty-array\0"
local EMPTY_ENCODED = cjson.encode(EMPTY)

-- array(t) -> t, marked (t defaults to a new table)
function json.array(t)
  t = t or {}
  if type(t) ~= "table" then error("aloop.json.array: a table expected, got " .. type(t), 2) end
  marked[t] = true
  any_marked = true
  return t
end

-- A copy of v where marked tables are dense arrays (holes become null, empty ones EMPTY).
local function prepare(v, depth)
  if type(v) ~= "table" then return v end
  if depth > 1000 then error("aloop.json.encode: nesting too deep (a cycle?)", 0) end
  local out = {}
  if marked[v] then
    local n = 0
    for k in pairs(v) do
      if math.type(k) ~= "integer" or k < 1 then
        error("aloop.json.encode: an array() table has a non-positive-integer key " .. tostring(k), 0)
      end
      if k > n then n = k end
    end
    if n == 0 then return EMPTY end
    for i = 1, n do
      local x = v[i]
      if x == nil then out[i] = cjson.null else out[i] = prepare(x, depth + 1) end
    end
    return out
  end
  for k, x in pairs(v) do out[k] = prepare(x, depth + 1) end
  return out
end

-- encode(v) -> text
function json.encode(v)
  if any_marked and next(marked) ~= nil then
    local text = cjson.encode(prepare(v, 0))
    return (text:gsub(EMPTY_ENCODED:gsub("%p", "%%%0"), "[]"))
  end
  return cjson.encode(v)
end

-- decode(text) -> value (JSON null is json.null); a malformed text raises a clear error
function json.decode(text)
  if type(text) ~= "string" then error("aloop.json.decode: a string expected, got " .. type(text), 2) end
  local ok, v = pcall(cjson.decode, text)
  if not ok then error("aloop.json.decode: " .. tostring(v), 2) end
  return v
end

return json
