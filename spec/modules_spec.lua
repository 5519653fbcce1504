-- The Lua half as modules (lua/aloop/init.lua and lua/aloop/<layer>/<name>.lua): every file is
-- compiled into the library as the module named after its path and loads with require (a table;
-- aloop.repl is the REPL function); the public table init.lua composes carries no private
-- helpers (no names starting with "_").
local aio = require "aloop"
local H = require "spec.helper"

-- The module name of each lua/aloop file: x/y.lua is aloop.x.y, a folder's init.lua the folder.
local function module_names()
  -- (sorted here: under the ASan pass, /usr/bin/sort inherits the preload and aborts on a leak)
  local out = H.sh("cd " .. H.q(H.root .. "/lua") .. " && find aloop -name '*.lua'")
  local names = {}
  for path in out:gmatch("[^\n]+") do
    if path:match("%.lua$") then
      local name = path:gsub("%.lua$", ""):gsub("/", ".")
      names[#names + 1] = name == "aloop.init" and "aloop" or name:gsub("%.init$", "")
    end
  end
  table.sort(names)
  return names
end

describe("aloop's Lua modules", function()
  it("load with require under the name of their path", function()
    local names = module_names()
    assert.is_true(#names >= 10)
    for _, name in ipairs(names) do
      local ok, m = pcall(require, name)
      assert.is_true(ok, name .. ": " .. tostring(m))
      assert.are.equal(name == "aloop.repl" and "function" or "table", type(m), name)
    end
    assert.are.equal(aio, require "aloop")
  end)

  it("give the public table no private names", function()
    for _, t in ipairs { aio, aio.executor, aio.thread, aio.subprocess } do
      for k in pairs(t) do
        assert.is_falsy(type(k) == "string" and k:sub(1, 1) == "_", "private name " .. tostring(k))
      end
    end
  end)

  it("leave unknown names of the public table nil", function()
    assert.is_nil(aio.no_such_name)
    assert.is_nil(rawget(aio, "no_such_name"))
  end)
end)
