/*
** Embedding overheads (bench/RESULTS.md, "Embedding"): built by CMake as build/bench/embed_bench.
**  1. complete_from_c: aloop_future_new + aloop_future_set_result on the loop thread, N times
**     (futures nobody awaits; a full GC every 64k keeps memory flat as a real host would see).
**  2. complete_awaited: N futures that one Lua task awaits in order: C completes them all
**     (aloop_future_set_result), then run_until_complete runs the task through the wake-ups.
**  3. promise_threadsafe: one host thread resolves N promises (aloop_promise_resolve), the loop
**     thread runs until all are complete.
**  4. step_host_evloop: the host's own libev loop (ev_run) steps aloop with ALOOP_STEP_NOPOLL from
**     an ev_check watcher while one aloop callback re-schedules itself (call_soon) every step:
**     ns per host iteration including one aloop step; and aloop_step(NOWAIT) from a plain C
**     loop with an idle aloop.
** Usage: embed_bench [N]   (default 1000000)
*/
#include <ev.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "aloop.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void report(const char *name, long n, double secs) {
  printf("%-22s n=%-8ld %8.3f s  %12.0f ops/s  %8.1f ns/op\n", name, n, secs, n / secs,
         secs * 1e9 / n);
  fflush(stdout);
}

static void die(lua_State *L, const char *what) {
  fprintf(stderr, "embed_bench: %s: %s\n", what, lua_tostring(L, -1));
  exit(1);
}

/* ---- 3: promises from a host thread */
typedef struct Batch {
  aloop_promise **p;
  long n;
} Batch;

static int push_int(lua_State *L, void *ud) {
  lua_pushinteger(L, (lua_Integer)(intptr_t)ud);
  return 1;
}

static void *resolver(void *arg) {
  Batch *b = arg;
  for (long i = 0; i < b->n; i++) aloop_promise_resolve(b->p[i], push_int, (void *)(intptr_t)i);
  return NULL;
}

/* ---- 4: host ev loop stepping aloop */
static lua_State *gL;
static int g_loop;
static long steps, target;
static ev_check check_w;
static ev_idle idle_w;

static void idle_cb(struct ev_loop *ev, ev_idle *w, int revents) {}

static void check_cb(struct ev_loop *ev, ev_check *w, int revents) {
  if (aloop_step(gL, g_loop, ALOOP_STEP_NOPOLL) < 0) die(gL, "step");
  if (++steps == target) ev_break(ev, EVBREAK_ALL);
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  lua_State *L = gL = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "aloop", luaopen_aloop, 1);
  lua_setglobal(L, "aio");
  if (!aloop_new_loop(L, NULL)) die(L, "new loop");
  int loop = lua_gettop(L);

  /* 1 */
  double t0 = now();
  for (long i = 0; i < n; i++) {
    if (aloop_future_new(L, loop) != ALOOP_OK) die(L, "future_new");
    lua_pushinteger(L, i);
    if (aloop_future_set_result(L, -2, 1) != ALOOP_OK) die(L, "set_result");
    lua_pop(L, 1);
  }
  report("complete_from_c", n, now() - t0);

  /* 2: futures awaited by a task, completed from C */
  lua_createtable(L, (int)n, 0);
  int futs = lua_gettop(L);
  for (long i = 0; i < n; i++) {
    aloop_future_new(L, loop);
    lua_rawseti(L, futs, i + 1);
  }
  lua_pushvalue(L, futs);
  lua_setglobal(L, "futs");
  if (luaL_dostring(L, "return aio.coro(function() local s = 0\n"
                       "  for i = 1, #futs do s = s + futs[i]:await() end\n"
                       "  return s end)") != LUA_OK)
    die(L, "script");
  int coro = lua_gettop(L);
  lua_getfield(L, loop, "create_task");
  lua_pushvalue(L, loop);
  lua_pushvalue(L, coro);
  lua_call(L, 2, 1);
  int task = lua_gettop(L);
  aloop_step(L, loop, ALOOP_STEP_NOWAIT); /* the task starts and waits on futs[1] */
  t0 = now();
  for (long i = 0; i < n; i++) {
    lua_rawgeti(L, futs, i + 1);
    lua_pushinteger(L, 1);
    if (aloop_future_set_result(L, -2, 1) != ALOOP_OK) die(L, "set_result");
    lua_pop(L, 1);
  }
  if (aloop_run_until_complete(L, loop, task) != 1 || lua_tointeger(L, -1) != n) die(L, "awaited");
  report("complete_awaited", n, now() - t0);
  lua_settop(L, loop);
  lua_pushnil(L);
  lua_setglobal(L, "futs");
  lua_gc(L, LUA_GCCOLLECT);

  /* 3 */
  Batch b = {malloc(sizeof(aloop_promise *) * n), n};
  lua_createtable(L, (int)n, 0);
  futs = lua_gettop(L);
  for (long i = 0; i < n; i++) {
    aloop_future_new(L, loop);
    b.p[i] = aloop_promise_new(L, -1);
    lua_rawseti(L, futs, i + 1);
  }
  lua_pushvalue(L, futs);
  lua_setglobal(L, "futs");
  (void)luaL_dostring(L, "return aio.coro(function() for i = 1, #futs do futs[i]:await() end end)");
  lua_getfield(L, loop, "create_task");
  lua_pushvalue(L, loop);
  lua_pushvalue(L, -3);
  lua_call(L, 2, 1);
  task = lua_gettop(L);
  t0 = now();
  pthread_t th;
  pthread_create(&th, NULL, resolver, &b);
  if (aloop_run_until_complete(L, loop, task) < 0) die(L, "promises");
  double dt = now() - t0;
  pthread_join(th, NULL);
  report("promise_threadsafe", n, dt);
  free(b.p);
  lua_settop(L, loop);
  lua_pushnil(L);
  lua_setglobal(L, "futs");
  aloop_close(L, loop);
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);

  /* 4a: the host's libev loop steps aloop (NOPOLL) while a callback reschedules itself */
  struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
  if (!aloop_new_loop(L, ev)) die(L, "new loop (host ev)");
  g_loop = lua_gettop(L);
  lua_setglobal(L, "hloop");
  lua_getglobal(L, "hloop");
  (void)luaL_dostring(L, "local function again() hloop:call_soon(again) end hloop:call_soon(again)");
  ev_check_init(&check_w, check_cb);
  ev_set_priority(&check_w, EV_MINPRI);
  ev_check_start(ev, &check_w);
  ev_idle_init(&idle_w, idle_cb); /* aloop always has a callback ready: never block */
  ev_idle_start(ev, &idle_w);
  target = n;
  t0 = now();
  ev_run(ev, 0);
  report("step_host_evloop", n, now() - t0);
  ev_check_stop(ev, &check_w);
  ev_idle_stop(ev, &idle_w);

  /* 4b: aloop_step(NOWAIT) from a plain C loop, same callback */
  t0 = now();
  for (long i = 0; i < n; i++)
    if (aloop_step(L, g_loop, ALOOP_STEP_NOWAIT) < 0) die(L, "step");
  report("step_nowait_c_loop", n, now() - t0);

  /* 4c: idle aloop (nothing scheduled), NOWAIT steps */
  (void)luaL_dostring(L, "hloop:close() hloop = aio.new_event_loop()");
  lua_settop(L, 0);
  lua_getglobal(L, "hloop");
  t0 = now();
  for (long i = 0; i < n; i++)
    if (aloop_step(L, 1, ALOOP_STEP_NOWAIT) < 0) die(L, "step");
  report("step_nowait_idle", n, now() - t0);
  aloop_close(L, 1);
  lua_close(L);
  ev_loop_destroy(ev);
  return 0;
}
