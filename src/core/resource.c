/*
** The one close path for a loop's resources (as libuv's handle queue). Objects that own an fd or
** a watcher register here while open and leave when they close: transports, listeners and
** processes (their owner should close them: in debug mode each one still open at loop:close() is
** reported as unclosed, with where it was made), and what the loop owns itself (add_reader and
** signal watchers, the DNS pool), which it closes silently. loop:close() shuts down the first
** kind, then the second, here and nowhere else.
*/
#include "core/internal.h"

static const char key_resources = 0; /* loop attribute: lightuserdata(obj) -> open resource */
static const char key_internal = 0;  /* the same for the loop's own resources */

static void push_table(lua_State *L, al_Loop *loop, const char *key) {
  al_push_loop(L, loop);
  lua_getiuservalue(L, -1, 1);
  if (lua_rawgetp(L, -1, key) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, -3, key);
  }
  lua_replace(L, -3);
  lua_pop(L, 1);
}

static void add(lua_State *L, al_Loop *loop, int idx, const char *key) {
  idx = lua_absindex(L, idx);
  push_table(L, loop, key);
  lua_pushvalue(L, idx);
  lua_rawsetp(L, -2, lua_touserdata(L, idx));
  lua_pop(L, 1);
}

static void remove_from(lua_State *L, al_Loop *loop, void *obj, const char *key) {
  push_table(L, loop, key);
  lua_pushnil(L);
  lua_rawsetp(L, -2, obj);
  lua_pop(L, 1);
}

void al_resource_add(lua_State *L, al_Loop *loop, int idx) {
  idx = lua_absindex(L, idx);
  if (loop->debug) al_debug_note_creation(L, loop, idx); /* for the "unclosed" warning */
  add(L, loop, idx, &key_resources);
}

void al_resource_remove(lua_State *L, al_Loop *loop, void *obj) {
  remove_from(L, loop, obj, &key_resources);
}

void al_resource_add_internal(lua_State *L, al_Loop *loop, int idx) {
  add(L, loop, idx, &key_internal);
}

void al_resource_remove_internal(lua_State *L, al_Loop *loop, void *obj) {
  remove_from(L, loop, obj, &key_internal);
}

/*
** Debug mode: a transport, server or process still open when its loop closes was never closed
** by its owner: a resource warning (asyncio's "unclosed transport"), with where it was made.
*/
static void warn_unclosed(lua_State *L, int idx) {
  al_push_description(L, idx);
  if (al_debug_push_creation(L, idx)) {
    lua_pushfstring(L, "unclosed %s (close it before its loop)\nObject created at:\n%s",
                    lua_tostring(L, -2), lua_tostring(L, -1));
    lua_replace(L, -3);
    lua_pop(L, 1);
  } else {
    lua_pushfstring(L, "unclosed %s (close it before its loop)", lua_tostring(L, -1));
    lua_replace(L, -2);
  }
  al_log_pushed(L, AL_LOG_WARNING);
}

/* Shuts down every resource registered under key (reporting each one when asked). */
static void close_all(lua_State *L, al_Loop *loop, int loopidx, const char *key, int report) {
  lua_getiuservalue(L, loopidx, 1);
  if (lua_rawgetp(L, -1, key) == LUA_TTABLE) {
    /* collect first: shutdown unregisters */
    lua_newtable(L);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, -3)) lua_rawseti(L, -3, ++n);
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      if (report) warn_unclosed(L, lua_gettop(L));
      al_Resource *o = lua_touserdata(L, -1);
      o->shutdown(L, o);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_rawsetp(L, -2, key);
  lua_pop(L, 1);
}

void al_resources_close(lua_State *L, al_Loop *loop, int loopidx) {
  loopidx = lua_absindex(L, loopidx);
  close_all(L, loop, loopidx, &key_resources, loop->debug);
  close_all(L, loop, loopidx, &key_internal, 0);
}

/*
** A loop collected without close(): only its own resources shut down (the others may have been
** finalized in the same collection and close themselves in their own __gc).
*/
void al_resources_close_own(lua_State *L, al_Loop *loop, int loopidx) {
  close_all(L, loop, lua_absindex(L, loopidx), &key_internal, 0);
}
