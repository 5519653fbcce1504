-- LuaRocks package of aloop: `luarocks make` in the repo builds with CMake and installs the Lua
-- module aloop.so (with the Lua half compiled in) and the `aloop` interpreter into the LuaRocks
-- tree; `luarocks test` runs busted. (C hosts use `cmake --install`, which adds libaloop.)
rockspec_format = "3.0"
package = "aloop"
version = "scm-1"
source = { url = "git+file://." }
description = {
  summary = "An asyncio-style async runtime for Lua 5.4 on libev",
  detailed = [[
Tasks, futures, timers, TCP/UDP/Unix transports and streams, subprocesses, signals,
synchronization primitives, queues, thread and process pools, and a C embedding API:
everything asyncio offers, for Lua coroutines, with its core in C.]],
  license = "MIT",
}
dependencies = { "lua >= 5.4, < 5.5" }
external_dependencies = {
  EV = { header = "ev.h", library = "ev" },
  HIREDIS = { header = "hiredis/read.h", library = "hiredis" }, -- the RESP reader of aloop.redis
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "RelWithDebInfo",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    CMAKE_INSTALL_BINDIR = "$(BINDIR)",
    ALOOP_INSTALL_CLIB = "OFF",
    ALOOP_LUA_CMOD_DIR = "$(LIBDIR)",
  },
}
-- Debian's busted (lua-busted) runs the specs against the CMake build in build/.
test = { type = "command", command = "scripts/build && LUA_CPATH='build/?.so;;' busted --lua=lua5.4 spec" }
