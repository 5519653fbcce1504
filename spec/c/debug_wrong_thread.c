/*
** Debug mode's wrong-thread check: while the loop runs on the main thread (parked inside a
** callback, so the Lua state is not in use), another OS thread calls loop:call_soon through
** the same state. In debug mode that raises a clear error; outside debug mode it is allowed.
** Prints one line per mode; exit 0.
*/
#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <stdio.h>

#include "aloop.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int parked, done;
static lua_State *G;
static char result[256];

/* Runs on the other thread once the loop thread is parked. */
static void *other(void *arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  while (!parked) pthread_cond_wait(&cv, &mu);
  lua_getglobal(G, "loop");
  lua_getfield(G, -1, "call_soon");
  lua_insert(G, -2);
  lua_getglobal(G, "print");
  if (lua_pcall(G, 2, 0, 0) != LUA_OK) {
    snprintf(result, sizeof result, "%s", lua_tostring(G, -1));
    lua_pop(G, 1);
  } else {
    snprintf(result, sizeof result, "no error");
  }
  done = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  return NULL;
}

/* A callback on the loop thread: lets the other thread in and waits until it is done. */
static int park(lua_State *L) {
  (void)L;
  pthread_mutex_lock(&mu);
  parked = 1;
  pthread_cond_broadcast(&cv);
  while (!done) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  return 0;
}

static int run(int debug) {
  parked = done = 0;
  result[0] = 0;
  lua_pushboolean(G, debug);
  lua_setglobal(G, "debug_mode");
  pthread_t th;
  pthread_create(&th, NULL, other, NULL);
  if (luaL_dostring(G, "local aio = require 'aloop'\n"
                       "loop = aio.new_event_loop()\n"
                       "loop:set_debug(debug_mode)\n"
                       "loop:run_until_complete(function() park() aio.sleep(0) end)\n"
                       "loop:close()\n") != LUA_OK) {
    fprintf(stderr, "lua: %s\n", lua_tostring(G, -1));
    return 1;
  }
  pthread_join(th, NULL);
  printf("%s: %s\n", debug ? "debug" : "normal", result);
  return 0;
}

int main(void) {
  G = luaL_newstate();
  luaL_openlibs(G);
  luaL_requiref(G, "aloop", luaopen_aloop, 0);
  lua_pop(G, 1);
  lua_register(G, "park", park);
  int rc = run(1) || run(0);
  lua_close(G);
  return rc;
}
