/*
** Line editing and history for the REPL of the `aloop` interpreter (module aloop.lineedit),
** on libedit's readline-compatible callback interface: the REPL keeps reading stdin through
** loop:add_reader and feeds characters here, so the loop (and tasks) run while you type.
** Built into the interpreter only, when libedit is found; the REPL falls back to plain reads.
*/
#include <stdio.h>
#include <stdlib.h>

#include <editline/readline.h>
#include <lauxlib.h>
#include <lua.h>

/* The interpreter has one Lua state and one prompt at a time. */
static lua_State *cb_L;
static int cb_ref = LUA_NOREF;
static int installed;

/* libedit calls this with a whole line (malloc'ed) or NULL at end of input. */
static void on_line(char *line) {
  lua_State *L = cb_L;
  /* No prompt while the line runs: the REPL installs the handler again for the next one. */
  rl_callback_handler_remove();
  installed = 0;
  if (line && *line) add_history(line);
  lua_rawgeti(L, LUA_REGISTRYINDEX, cb_ref);
  if (line) lua_pushstring(L, line);
  else lua_pushnil(L);
  free(line);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "aloop: %s\n", lua_isstring(L, -1) ? lua_tostring(L, -1) : "(error object)");
    lua_pop(L, 1);
  }
}

/* lineedit.prompt(prompt, fn): show prompt and edit a line; fn(line or nil at EOF) gets it. */
static int le_prompt(lua_State *L) {
  const char *prompt = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  luaL_unref(L, LUA_REGISTRYINDEX, cb_ref);
  cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  cb_L = L;
  if (installed) rl_callback_handler_remove();
  rl_callback_handler_install(prompt, on_line);
  installed = 1;
  return 0;
}

/* lineedit.feed(): stdin is readable; let libedit read what is there (may call fn). */
static int le_feed(lua_State *L) {
  (void)L;
  if (installed) rl_callback_read_char();
  return 0;
}

/* lineedit.stop(): restore the terminal. */
static int le_stop(lua_State *L) {
  if (installed) rl_callback_handler_remove();
  installed = 0;
  luaL_unref(L, LUA_REGISTRYINDEX, cb_ref);
  cb_ref = LUA_NOREF;
  return 0;
}

int luaopen_aloop_lineedit(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"prompt", le_prompt}, {"feed", le_feed}, {"stop", le_stop}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
