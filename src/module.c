/*
** Module entry points: luaopen_aloop_core (the C core as `aloop.core`) and luaopen_aloop,
** which also registers the Lua half (the files of lua/aloop, compiled into the library by CMake as
** al_lua_sources) in package.preload and returns the public table from aloop/init.lua.
*/
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <string.h>

#include "core/internal.h"
#include "redis/redis.h"

typedef struct al_LuaSource {
  const char *name; /* module name, e.g. "aloop.init" */
  const char *file; /* chunk name for tracebacks, e.g. "@lua/aloop/init.lua" */
  const unsigned char *src;
  size_t len;
} al_LuaSource;

extern const al_LuaSource al_lua_sources[]; /* generated: lua_sources.c */

/*
** Background threads (DNS, thread pools, remote loops, the reaper) run code of this library.
** When it is a module that lua_close() would dlclose(), a thread still finishing after that
** would jump into unmapped memory: so the first thread pins the library (RTLD_NODELETE).
*/
static void pin_library(void) {
  Dl_info info;
  if (dladdr((void *)&pin_library, &info) && info.dli_fname)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

int al_thread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, pin_library);
  return pthread_create(th, attr, fn, arg);
}

int luaopen_aloop_core(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &al_key_state);
  int have = !lua_isnil(L, -1);
  lua_pop(L, 1);
  lua_newtable(L);
  if (!have) {
    al_State *st = lua_newuserdatauv(L, sizeof *st, 0);
    memset(st, 0, sizeof *st);
    st->default_loop_ref = st->coro_mt_ref = LUA_NOREF;
    lua_rawsetp(L, LUA_REGISTRYINDEX, &al_key_state);
  }
  al_errors_open(L);
  al_loop_open(L);
  al_handle_open(L);
  al_future_open(L);
  al_task_open(L);
  al_log_open(L);
  al_debug_open(L);
  al_threads_open(L);
  al_redis_open(L);
  lua_pushliteral(L, ALOOP_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}

aloop_loop *aloop_toloop(lua_State *L, int idx) { return al_toloop(L, idx); }

static int load_source(lua_State *L) {
  const al_LuaSource *s = lua_touserdata(L, lua_upvalueindex(1));
  if (luaL_loadbufferx(L, (const char *)s->src, s->len, s->file, "t") != LUA_OK) return lua_error(L);
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  return 1;
}

int luaopen_aloop(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_aloop_core);
  lua_setfield(L, -2, "aloop.core");
  for (const al_LuaSource *s = al_lua_sources; s->name; s++) {
    lua_pushlightuserdata(L, (void *)s);
    lua_pushcclosure(L, load_source, 1);
    lua_setfield(L, -2, s->name);
  }
  lua_pop(L, 1);
  /* require "aloop.init" through the preload we just set (so it is loaded once) */
  lua_getglobal(L, "require");
  if (lua_isnil(L, -1)) return luaL_error(L, "aloop: open the package library first");
  lua_pushliteral(L, "aloop.init");
  lua_call(L, 1, 1);
  return 1;
}

/*
** `require "aloop.busted"` from a stock lua5.4 that has not required "aloop" yet: no preload
** exists then, and Lua's all-in-one C searcher looks for luaopen_aloop_busted in aloop.so (found
** on package.cpath). Opens aloop (which registers the preloads) and runs the helper's source.
*/
int luaopen_aloop_busted(lua_State *L) {
  luaL_requiref(L, "aloop", luaopen_aloop, 0);
  lua_pop(L, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_getfield(L, -1, "aloop.busted");
  lua_pushliteral(L, "aloop.busted");
  lua_call(L, 1, 1);
  return 1;
}
