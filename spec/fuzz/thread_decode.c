/*
** libFuzzer harness: aio.thread.decode of random bytes (src/threads/marshal.c's decoder, which
** reads what crosses between Lua states). Any input must give values or a clear aloop error,
** never a crash, a C stack overflow or a leak; functions (bytecode) are refused from outside.
*/
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "threads/threads.h"

static int decode(lua_State *L) {
  size_t n;
  const char *p = lua_tolstring(L, 1, &n);
  return al_unmarshal_data(L, p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static lua_State *L;
  if (!L) {
    L = luaL_newstate();
    luaL_openlibs(L);
  }
  lua_pushcfunction(L, decode);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (!msg || strncmp(msg, "aloop: ", 7) != 0) __builtin_trap(); /* only aloop's own errors */
  }
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
