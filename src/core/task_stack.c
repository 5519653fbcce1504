/*
** A task's stack as seen from outside (asyncio's Task.get_stack/print_stack): the frames of its
** suspended coroutine, and the "Stack for <Task ...>" text that reports of pending tasks carry.
*/
#include <stdio.h>

#include "core/internal.h"

/*
** get_stack([limit]): the frames of the suspended coroutine, innermost first, as tables
** {source=, line=, name=}; aloop's own C frames are left out. Empty once the task is done.
*/
static int task_get_stack(lua_State *L) {
  al_Task *t = al_checktask(L, 1);
  lua_Integer limit = luaL_optinteger(L, 2, 1000);
  lua_newtable(L);
  if (!t->co || !t->started) return 1;
  lua_Debug ar;
  int n = 0;
  for (int level = 0; n < limit && lua_getstack(t->co, level, &ar); level++) {
    lua_getinfo(t->co, "Sln", &ar);
    if (ar.currentline < 0) continue; /* C functions: the await machinery */
    lua_createtable(L, 0, 3);
    lua_pushstring(L, ar.short_src);
    lua_setfield(L, -2, "source");
    lua_pushinteger(L, ar.currentline);
    lua_setfield(L, -2, "line");
    if (ar.name) lua_pushfstring(L, "function '%s'", ar.name);
    else if (*ar.what == 'm') lua_pushliteral(L, "main chunk");
    else lua_pushfstring(L, "function <%s:%d>", ar.short_src, ar.linedefined);
    lua_setfield(L, -2, "name");
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* Pushes "Stack for <Task ...> (most recent call last):" and one line a frame. */
static int stack_text(lua_State *L) {
  al_checktask(L, 1);
  lua_settop(L, 1);
  lua_pushcfunction(L, task_get_stack);
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  int frames = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_tolstring(L, 1, NULL);
  lua_pushfstring(L, "Stack for %s (most recent call last):\n", lua_tostring(L, -1));
  lua_remove(L, -2);
  luaL_addvalue(&b);
  lua_Integer n = luaL_len(L, frames);
  if (n == 0) luaL_addstring(&b, "No stack for this task.\n");
  for (lua_Integer i = n; i >= 1; i--) {
    lua_rawgeti(L, frames, i);
    lua_getfield(L, -1, "source");
    lua_getfield(L, -2, "line");
    lua_getfield(L, -3, "name");
    lua_pushfstring(L, "  %s:%d: in %s\n", lua_tostring(L, -3), (int)lua_tointeger(L, -2),
                    lua_tostring(L, -1));
    lua_replace(L, -5);
    lua_pop(L, 3);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  return 1;
}

/* Pushes the stack text of the task at idx (for reports); never raises. */
void al_task_push_stack_text(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, stack_text);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_pop(L, 1);
    lua_pushliteral(L, "(no stack)");
  }
}

/* print_stack([file]): the stack text to file (default stdout). */
static int task_print_stack(lua_State *L) {
  al_checktask(L, 1);
  lua_settop(L, 2);
  lua_pushcfunction(L, stack_text);
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  if (lua_isnil(L, 2)) {
    fputs(lua_tostring(L, -1), stdout);
    fflush(stdout);
  } else {
    lua_getfield(L, 2, "write");
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -3);
    lua_call(L, 2, 0);
  }
  return 0;
}

/* task:get_stack and task:print_stack go to core.Task. */
void al_task_stack_open(lua_State *L, int core) {
  static const luaL_Reg methods[] = {
      {"get_stack", task_get_stack},
      {"print_stack", task_print_stack},
      {NULL, NULL},
  };
  lua_getfield(L, core, "Task");
  luaL_setfuncs(L, methods, 0);
  lua_pop(L, 1);
}
