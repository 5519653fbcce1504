-- LuaRocks (aloop-scm-1.rockspec): `luarocks make` builds the rock with CMake and installs the Lua
-- module and the interpreter into a tree of its own; a stock lua5.4 then finds aloop there
-- through the paths `luarocks path` prints, and the tree holds nothing but the rock's files.
local H = require "spec.helper"

describe("the rockspec", function()
  local tree, out, code
  setup(function()
    tree = os.tmpname()
    os.remove(tree)
    -- A scratch copy of the sources, so the rock's build dir never touches the repo's.
    local src = tree .. "-src"
    -- (LD_PRELOAD unset: under the ASan pass, luarocks, the compilers and the tools they run
    -- must not run with its runtime; the rock is a plain build.)
    out, code = H.sh(("unset LD_PRELOAD; mkdir -p %s && tar -C %s --exclude='./build*' --exclude=./.git -cf - ."
      .. " | tar -x -C %s && cd %s && luarocks --lua-version 5.4 --tree %s make"
      .. " aloop-scm-1.rockspec"):format(H.q(src), H.q(H.root), H.q(src), H.q(src), H.q(tree)))
  end)
  teardown(function() H.sh("rm -rf " .. H.q(tree) .. " " .. H.q(tree .. "-src")) end)

  it("installs with luarocks make into a fresh tree", function()
    assert.equal(0, code, out)
    assert.matches("aloop scm%-1 is now installed", out)
  end)

  it("lets a stock lua5.4 require aloop from that tree", function()
    local res, rc = H.sh(("unset LD_PRELOAD; eval \"$(luarocks --lua-version 5.4 --tree %s path)\" && cd /"
      .. " && lua5.4 -e 'local aio = require \"aloop\"; print(aio.version,"
      .. " package.searchpath(\"aloop\", package.cpath))'"):format(H.q(tree)))
    assert.equal(0, rc, res)
    assert.matches("^" .. require("aloop").version:gsub("%.", "%%.") .. "\t" .. tree:gsub("%p", "%%%0")
      .. "/lib/lua/5%.4/aloop%.so", res)
  end)

  it("installs the interpreter, which runs a task", function()
    local res, rc = H.sh("unset LD_PRELOAD; " .. H.q(tree .. "/bin/aloop") .. " -e 'print(require(\"aloop\").run(function() return 42 end))'")
    assert.equal(0, rc, res)
    assert.equal("42\n", res)
  end)
end)
