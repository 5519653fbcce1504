/*
** Errors raised by user code and the loop's exception handler: the message handler of every
** protected call (al_msgh, which remembers the traceback), al_report (asyncio's
** call_exception_handler: the loop's handler, or the default one that formats the context like
** asyncio's and logs it), and the Loop methods that set, get and call the handler.
*/
#include <stdio.h>

#include "core/internal.h"

static const char key_lasttb = 0; /* the traceback of the last error seen by al_msgh */

/*
** Message handler for every protected call into user code: remembers a traceback of where the
** error happened, and stores it in aloop error tables that lack one.
*/
int al_msgh(lua_State *L) {
  luaL_traceback(L, L, NULL, 1);
  if (al_error_is(L, 1, "Error")) {
    lua_pushliteral(L, "traceback");
    if (lua_rawget(L, 1) == LUA_TNIL) {
      lua_pushliteral(L, "traceback");
      lua_pushvalue(L, 2);
      lua_rawset(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &key_lasttb);
  lua_settop(L, 1);
  return 1;
}

/* Pushes the traceback remembered by the last al_msgh call. */
void al_push_lasttb(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &key_lasttb);
}

static int pcall_tostring(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/* Pushes tostring(v) for the value at idx, or a placeholder if __tostring raises. */
void al_push_description(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, pcall_tostring);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_isstring(L, -1)) {
    lua_pop(L, 1);
    lua_pushfstring(L, "<%s (tostring failed)>", luaL_typename(L, idx));
  }
}

/* Appends the string on top of the stack to the list at `parts` (popping it). */
static void append_top(lua_State *L, int parts) {
  lua_rawseti(L, parts, (lua_Integer)lua_rawlen(L, parts) + 1);
}

static void append(lua_State *L, int parts, const char *s) {
  lua_pushstring(L, s);
  append_top(L, parts);
}

/* Appends "<sep><string field>" of the table at t when that field is a string. */
static int append_string_field(lua_State *L, int parts, int t, const char *key, const char *sep) {
  int found = lua_getfield(L, t, key) == LUA_TSTRING;
  if (found) {
    append(L, parts, sep);
    append_top(L, parts);
  } else {
    lua_pop(L, 1);
  }
  return found;
}

/*
** Formats ctx (a table) like asyncio's default handler and writes it to stderr. The pieces go
** to a list first: a luaL_Buffer must not share the stack with the fields read in between.
*/
static void default_handler(lua_State *L, int ctx) {
  ctx = lua_absindex(L, ctx);
  lua_newtable(L);
  int parts = lua_gettop(L);
  if (lua_getfield(L, ctx, "message") != LUA_TNIL) {
    al_push_description(L, -1);
    append_top(L, parts);
  } else {
    append(L, parts, "Unhandled error in event loop");
  }
  lua_pop(L, 1);
  static const char *const keys[] = {"task", "future", "handle", "transport", "protocol", NULL};
  for (int i = 0; keys[i]; i++) {
    if (lua_getfield(L, ctx, keys[i]) != LUA_TNIL) {
      append(L, parts, "\n");
      append(L, parts, keys[i]);
      append(L, parts, ": ");
      al_push_description(L, -1);
      append_top(L, parts);
    }
    lua_pop(L, 1);
  }
  int tb_done = 0;
  if (lua_getfield(L, ctx, "exception") != LUA_TNIL) {
    append(L, parts, "\nexception: ");
    al_push_description(L, -1);
    append_top(L, parts);
    if (lua_istable(L, -1)) tb_done = append_string_field(L, parts, lua_gettop(L), "traceback", "\n");
  }
  lua_pop(L, 1);
  if (!tb_done) append_string_field(L, parts, ctx, "traceback", "\n");
  append_string_field(L, parts, ctx, "stack", "\n");
  append_string_field(L, parts, ctx, "source_traceback", "\nObject created at:\n");
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_Integer n = (lua_Integer)lua_rawlen(L, parts);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, parts, i);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  lua_remove(L, parts);
  al_log_pushed(L, AL_LOG_ERROR);
}

static int l_default_handler_p(lua_State *L) {
  default_handler(L, 1);
  return 0;
}

/*
** Calls the loop's exception handler with the context table at `ctx`. A handler that raises is
** itself reported through the default handler; nothing here ever raises.
*/
void al_push_error_context(lua_State *L, int eidx) {
  lua_createtable(L, 0, 5);
  lua_insert(L, -2);
  lua_setfield(L, -2, "message");
  lua_pushvalue(L, eidx);
  lua_setfield(L, -2, "exception");
  al_push_lasttb(L);
  lua_setfield(L, -2, "traceback");
}

void al_report(lua_State *L, al_Loop *loop, int ctx) {
  ctx = lua_absindex(L, ctx);
  int top = lua_gettop(L);
  if (loop && loop->handler_ref != LUA_NOREF) {
    lua_pushcfunction(L, al_msgh);
    lua_rawgeti(L, LUA_REGISTRYINDEX, loop->handler_ref);
    al_push_loop(L, loop);
    lua_pushvalue(L, ctx);
    if (lua_pcall(L, 2, 0, top + 1) == LUA_OK) {
      lua_settop(L, top);
      return;
    }
    /* STACK: msgh, err. A KeyboardInterrupt (Ctrl+C while the handler ran, or raised by it)
       stops the running loop, as asyncio re-raises it from handlers, instead of being lost. */
    if (loop->running && al_error_is(L, top + 2, "KeyboardInterrupt")) {
      loop->interrupted = 1;
      lua_settop(L, top);
      return;
    }
    lua_pushliteral(L, "Unhandled error in exception handler");
    al_push_error_context(L, top + 2);
    lua_pushvalue(L, ctx);
    lua_setfield(L, -2, "context");
    ctx = lua_gettop(L);
  }
  lua_pushcfunction(L, l_default_handler_p);
  lua_pushvalue(L, ctx);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "aloop: exception handler failed: %s\n",
            lua_isstring(L, -1) ? lua_tostring(L, -1) : "(error object)");
  }
  lua_settop(L, top);
}

static int loop_set_exception_handler(lua_State *L) {
  al_Loop *loop = al_checkloop(L, 1);
  if (!lua_isnoneornil(L, 2) && !lua_isfunction(L, 2) && !luaL_getmetafield(L, 2, "__call"))
    return luaL_argerror(L, 2, "a callable or nil expected");
  lua_settop(L, 2);
  luaL_unref(L, LUA_REGISTRYINDEX, loop->handler_ref);
  loop->handler_ref = lua_isnil(L, 2) ? LUA_NOREF : luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static int loop_get_exception_handler(lua_State *L) {
  al_Loop *loop = al_checkloop(L, 1);
  if (loop->handler_ref == LUA_NOREF) lua_pushnil(L);
  else lua_rawgeti(L, LUA_REGISTRYINDEX, loop->handler_ref);
  return 1;
}

static int loop_default_exception_handler(lua_State *L) {
  (void)al_checkloop(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  default_handler(L, 2);
  return 0;
}

static int loop_call_exception_handler(lua_State *L) {
  al_Loop *loop = al_checkloop(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  al_report(L, loop, 2);
  return 0;
}

static const luaL_Reg handler_methods[] = {
    {"set_exception_handler", loop_set_exception_handler},
    {"get_exception_handler", loop_get_exception_handler},
    {"default_exception_handler", loop_default_exception_handler},
    {"call_exception_handler", loop_call_exception_handler},
    {NULL, NULL},
};

/* The exception-handler methods go to core.Loop. */
void al_exception_open(lua_State *L, int core) {
  lua_getfield(L, core, "Loop");
  luaL_setfuncs(L, handler_methods, 0);
  lua_pop(L, 1);
}
