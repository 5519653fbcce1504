/*
** The logger (aio.log): every message aloop prints itself (the default exception handler, slow
** callbacks, resource warnings, "never awaited") goes through al_log, which hands it to a sink
** function set from Lua (aio.log.set_sink) or writes it to stderr. Levels filter what is kept.
*/
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

static const char key_sink = 0; /* registry: the sink function, or nil for stderr */

static const char *const level_names[] = {"debug", "info", "warning", "error", NULL};

static int sink_call(lua_State *L) {
  /* STACK: sink, level, message */
  lua_call(L, 2, 0);
  return 0;
}

/* Logs the message on top of the stack (popped) at `level`. Never raises. */
void al_log_pushed(lua_State *L, int level) {
  al_State *st = al_state(L);
  if (level < st->log_level) {
    lua_pop(L, 1);
    return;
  }
  int msg = lua_gettop(L);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &key_sink) != LUA_TNIL) {
    lua_pushcfunction(L, sink_call);
    lua_insert(L, -2);
    lua_pushstring(L, level_names[level]);
    lua_pushvalue(L, msg);
    if (lua_pcall(L, 3, 0, 0) == LUA_OK) {
      lua_settop(L, msg - 1);
      return;
    }
    fprintf(stderr, "aloop: the log sink failed: %s\n",
            lua_isstring(L, -1) ? lua_tostring(L, -1) : "(error object)");
  }
  size_t len;
  const char *s = lua_tolstring(L, msg, &len);
  if (s) {
    fwrite(s, 1, len, stderr);
    if (len == 0 || s[len - 1] != '\n') fputc('\n', stderr);
    fflush(stderr);
  }
  lua_settop(L, msg - 1);
}

void al_log(lua_State *L, int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  al_log_pushed(L, level);
}

static int checklevel(lua_State *L, int idx) {
  return luaL_checkoption(L, idx, NULL, level_names);
}

/* aio.log.log(level, message) */
static int l_log(lua_State *L) {
  int level = checklevel(L, 1);
  luaL_checkany(L, 2);
  luaL_tolstring(L, 2, NULL);
  al_log_pushed(L, level);
  return 0;
}

/* aio.log.debug/info/warning/error(fmt, ...): string.format'ed when there are arguments. */
static int l_log_at(lua_State *L) {
  int level = (int)lua_tointeger(L, lua_upvalueindex(1));
  int n = lua_gettop(L);
  if (n > 1) {
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "format");
    lua_remove(L, -2);
    lua_insert(L, 1);
    lua_call(L, n, 1);
  } else {
    luaL_checkany(L, 1);
    luaL_tolstring(L, 1, NULL);
  }
  al_log_pushed(L, level);
  return 0;
}

static int l_set_sink(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &key_sink);
  return 0;
}

static int l_get_sink(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &key_sink);
  return 1;
}

static int l_set_level(lua_State *L) {
  al_state(L)->log_level = checklevel(L, 1);
  return 0;
}

static int l_get_level(lua_State *L) {
  lua_pushstring(L, level_names[al_state(L)->log_level]);
  return 1;
}

static const luaL_Reg log_funcs[] = {
    {"log", l_log},
    {"set_sink", l_set_sink},
    {"get_sink", l_get_sink},
    {"set_level", l_set_level},
    {"get_level", l_get_level},
    {NULL, NULL},
};

/* module.log = the logger table (the module table is on top). */
void al_log_open(lua_State *L, int core) {
  al_state(L)->log_level = AL_LOG_INFO;
  luaL_newlib(L, log_funcs);
  for (int i = 0; level_names[i]; i++) {
    lua_pushinteger(L, i);
    lua_pushcclosure(L, l_log_at, 1);
    lua_setfield(L, -2, level_names[i]);
  }
  lua_setfield(L, core, "log");
}
