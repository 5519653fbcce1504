/*
** Debug mode (loop:set_debug(true), ALOOP_DEBUG=1, aloop --debug): where handles, futures,
** tasks and loops were created (kept in a weak table, only in debug mode, so reports can show
** it), the wrong-thread check for loop methods, and the timing of slow callbacks (loop.c for the
** ready queue, al_debug_slow for callbacks libev runs directly).
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

static const char key_created = 0; /* weak-keyed table: object -> creation traceback */

/* Debug mode for things not tied to a loop yet: the running loop's flag, else ALOOP_DEBUG. */
static int debug_default(lua_State *L) {
  al_State *st = al_state(L);
  if (st->running) return st->running->debug;
  const char *e = getenv("ALOOP_DEBUG");
  return e && *e && strcmp(e, "0") != 0;
}

/* Remembers the traceback from `level` (1: the caller of the running C function). */
static void note(lua_State *L, int idx, int level) {
  idx = lua_absindex(L, idx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &key_created);
  lua_pushvalue(L, idx);
  luaL_traceback(L, L, NULL, level);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

void al_debug_note_creation(lua_State *L, al_Loop *loop, int idx) {
  if (loop ? loop->debug : debug_default(L)) note(L, idx, 1);
}

int al_debug_push_creation(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &key_created);
  lua_pushvalue(L, idx);
  lua_rawget(L, -2);
  lua_remove(L, -2);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  return 1;
}

/* Pushes "file:line" of the first frame of user code (not C, not aloop's own lua/aloop/ files)
   where the object at idx was created, or returns 0. */
int al_debug_push_creation_site(lua_State *L, int idx) {
  if (!al_debug_push_creation(L, idx)) return 0;
  const char *tb = lua_tostring(L, -1);
  const char *p = tb ? strstr(tb, "\n\t") : NULL;
  for (; p; p = strstr(p + 1, "\n\t")) {
    const char *start = p + 2, *end = strstr(start, ": in ");
    if (!end) break;
    if (strncmp(start, "[C]", 3) != 0 && strncmp(start, "lua/aloop/", 10) != 0) {
      lua_pushlstring(L, start, (size_t)(end - start));
      lua_remove(L, -2);
      return 1;
    }
  }
  lua_pop(L, 1);
  return 0;
}

/* Loop methods that are not thread-safe raise when called from another OS thread. */
void al_debug_check_thread(lua_State *L, al_Loop *loop) {
  if (loop->debug && loop->running && !pthread_equal(pthread_self(), loop->thread))
    luaL_error(L, "aloop: non-thread-safe operation invoked on an event loop from another "
                  "thread; use call_soon_threadsafe");
}

/*
** Debug mode, for callbacks libev runs directly (transports, listeners) rather than through the
** ready queue: logs "Executing <what> took N seconds" as a warning, as loop.c does for ready
** callbacks, when the one that started at t0 (al_now()) ran longer than
** loop.slow_callback_duration. `what` is a lua_pushfstring format.
*/
void al_debug_slow(lua_State *L, al_Loop *loop, double t0, const char *what, ...) {
  double dt = al_now() - t0;
  if (dt < loop->slow_callback_duration) return;
  va_list ap;
  va_start(ap, what);
  lua_pushvfstring(L, what, ap);
  va_end(ap);
  char secs[32];
  snprintf(secs, sizeof secs, "%.3f", dt);
  al_log(L, AL_LOG_WARNING, "Executing %s took %s seconds", lua_tostring(L, -1), secs);
  lua_pop(L, 1);
}

/* core._debug_note(obj): remember where obj (e.g. a coroutine object) was made, in debug mode. */
static int l_debug_note(lua_State *L) {
  luaL_checkany(L, 1);
  if (debug_default(L)) note(L, 1, 2); /* skip aio.coro itself */
  return 0;
}

/* core._creation_traceback(obj) -> the traceback where obj was made (debug mode), or nil. */
static int l_creation_traceback(lua_State *L) {
  luaL_checkany(L, 1);
  if (!al_debug_push_creation(L, 1)) lua_pushnil(L);
  return 1;
}

/* core._debug_enabled() */
static int l_debug_enabled(lua_State *L) {
  lua_pushboolean(L, debug_default(L));
  return 1;
}

static const luaL_Reg debug_funcs[] = {
    {"_debug_note", l_debug_note},
    {"_creation_traceback", l_creation_traceback},
    {"_debug_enabled", l_debug_enabled},
    {NULL, NULL},
};

void al_debug_open(lua_State *L, int core) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &key_created);
  lua_pushvalue(L, core);
  luaL_setfuncs(L, debug_funcs, 0);
  lua_pop(L, 1);
}
