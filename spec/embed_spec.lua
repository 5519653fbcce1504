-- Embedding and ecosystem (API.md §11): the C API of include/aloop.h through the C programs
-- spec/c/embed_api.c (checks, including bad use) and examples/embed/*.c (a host whose thread
-- completes futures; a host whose own libev loop steps aloop), `require "aloop.busted"` from a
-- stock lua5.4, and `cmake --install` into a temporary prefix (the Lua module, pkg-config, a
-- C program built against the installed header and library, the aloop binary).
local H = require "spec.helper"

-- Tools (cmake, cc) run without the sanitizer runtime the ASan pass preloads into everything.
local TOOL = "env -u LD_PRELOAD "

local function run(prog, args)
  return H.capture("exec timeout -s KILL 30 " .. H.q(prog) .. " " .. (args or ""))
end

describe("the C API (spec/c/embed_api.c)", function()
  local out, err, code
  setup(function() out, err, code = run(H.build .. "/spec/embed_api") end)

  it("passes every check and exits 0", function()
    assert.equal("", (out:gsub("ok [^\n]*\n", "")):gsub("0 failures\n$", ""), "stderr: " .. err)
    assert.equal(0, code, out .. err)
  end)

  it("reports nothing on stderr", function() assert.equal("", err) end)

  for _, name in ipairs {
    "set_result twice: ALOOP_ESTATE",
    "set_result on a Task: ALOOP_ERROR",
    "step: loop:stop() -> STOPPED",
    "from another thread while the loop runs: ALOOP_ETHREAD",
    "step a closed loop: ALOOP_ECLOSED",
    "call_threadsafe after close: -1",
    "promise after close: ALOOP_ECLOSED",
    "resolve (two values), reject, cancel, a raising push becomes the exception",
    "the host's watcher fires while aloop runs the shared loop",
  } do
    it("checks " .. name, function() assert.truthy(out:find("ok " .. name .. "\n", 1, true)) end)
  end
end)

-- Runs a program built into <build>/examples and expects exactly these stdout lines.
local function expect_example(name, lines)
  local out, err, code = run(H.build .. "/examples/" .. name)
  assert.equal(0, code, out .. err)
  assert.equal(table.concat(lines, "\n") .. "\n", out)
  assert.equal("", err)
end

describe("examples/embed", function()
  it("host_thread: a host function returns futures that host threads complete", function()
    expect_example("host_thread", {
      "fetched: alpha!, beta!",
      "the ticker ran meanwhile: true",
      "missing: false, no such key: missing",
      "timed out: true",
      "host: result: script done",
      "host: 4 host threads joined, loop closed, state closed",
    })
  end)

  it("host_evloop: the host's own libev loop steps aloop one iteration at a time", function()
    expect_example("host_evloop", {
      "lua: slept true; host timer ticked meanwhile: true",
      "lua: task a, task b",
      "lua: completed by a host thread",
      "host: result: script done; aloop stepped by the host's ev_run: yes",
      "host: loop closed, state closed, host loop destroyed",
    })
  end)
end)

describe("require from a stock lua5.4", function()
  local cpath = H.q(H.build .. "/?.so;;")

  it('require "aloop.busted" works before anything required "aloop"', function()
    local out, err, code = H.capture("LUA_CPATH=" .. cpath .. [[ lua5.4 -e '
      local b = require "aloop.busted"
      print(type(b.async), package.loaded.aloop == require "aloop")']])
    assert.equal(0, code, err)
    assert.equal("function\ttrue\n", out)
  end)
end)

describe("cmake --install into a temporary prefix", function()
  local prefix
  setup(function()
    prefix = os.tmpname()
    os.remove(prefix)
    local out, code = H.sh(TOOL .. "cmake --install " .. H.q(H.build) .. " --prefix " .. H.q(prefix))
    assert(code == 0, out)
  end)
  teardown(function() if prefix then H.sh("rm -rf " .. H.q(prefix)) end end)

  it("installs the library, the header, aloop.pc, the Lua module and the binary", function()
    for _, f in ipairs { "lib/libaloop.a", "lib/libaloop.so", "include/aloop.h",
      "lib/pkgconfig/aloop.pc", "lib/lua/5.4/aloop.so", "bin/aloop" } do
      assert.truthy(io.open(prefix .. "/" .. f), f .. " is missing")
    end
  end)

  it("lua5.4 finds the installed module through LUA_CPATH", function()
    local out, err, code = H.capture("LUA_CPATH=" .. H.q(prefix .. "/lib/lua/5.4/?.so")
      .. [[ lua5.4 -e 'local aio = require "aloop"
        print(aio.run(function() return aio.sleep(0.001, "installed") end))']])
    assert.equal(0, code, err)
    assert.equal("installed\n", out)
  end)

  it("the installed aloop binary runs", function()
    local out, err, code = H.capture(H.q(prefix .. "/bin/aloop") ..
      [[ -e 'print(require("aloop").run(function() return "bin ok" end))']])
    assert.equal(0, code, err)
    assert.equal("bin ok\n", out)
  end)

  it("a C program builds against it with pkg-config and runs", function()
    local src = H.tmpfile([[
#include <stdio.h>
#include <lauxlib.h>
#include <lualib.h>
#include <aloop.h>
int main(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "aloop", luaopen_aloop, 1);
  if (!aloop_new_loop(L, NULL) || aloop_future_new(L, -1) != ALOOP_OK) return 1;
  lua_pushliteral(L, "from C");
  if (aloop_future_set_result(L, -2, 1) != ALOOP_OK) return 2;
  if (aloop_run_until_complete(L, -2, -1) != 1) return 3;
  printf("%s\n", lua_tostring(L, -1));
  aloop_close(L, -3);
  lua_close(L);
  return 0;
}
]])
    os.rename(src, src .. ".c")
    src = src .. ".c"
    local exe = src .. ".bin"
    local env = TOOL .. "PKG_CONFIG_PATH=" .. H.q(prefix .. "/lib/pkgconfig") .. " "
    local out, code = H.sh(env .. "cc -o " .. H.q(exe) .. " " .. H.q(src) ..
      " $(" .. env .. "pkg-config --cflags --libs aloop)")
    os.remove(src)
    assert.equal(0, code, out)
    local rout, rerr, rcode = H.capture("LD_LIBRARY_PATH=" .. H.q(prefix .. "/lib") .. " " .. H.q(exe))
    os.remove(exe)
    assert.equal(0, rcode, rerr)
    assert.equal("from C\n", rout)
  end)
end)
