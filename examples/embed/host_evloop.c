/*
** A host with its own libev main loop that drives aloop one iteration at a time
** (examples/embed/host_evloop.lua is its script). aloop's loop is made around the host's
** struct ev_loop (aloop_new_loop(L, ev)), so aloop's watchers live on it, and the host's
** ev_run does all the polling:
** - an ev_prepare watcher asks aloop_next_timeout() before each poll and keeps the poll from
**   sleeping past it (an ev_idle when aloop has callbacks ready, an ev_timer for its next timer);
** - an ev_check watcher of the lowest priority, so it runs after the I/O and wake-up callbacks
**   of the same poll, runs one aloop iteration: aloop_step(L, loop, ALOOP_STEP_NOPOLL);
** - the host's own ev_timer ticks independently; a host thread completes a future through an
**   aloop_promise (its wake-up arrives through aloop's ev_async on the host's loop).
** When the script's task is done, a done callback (a C function) breaks the host's ev_run.
** Usage: host_evloop [script.lua]
*/
#include <ev.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "aloop.h"

#ifndef EXAMPLE_DIR
#define EXAMPLE_DIR "examples/embed"
#endif

typedef struct Host {
  struct ev_loop *ev;
  lua_State *L;
  int loop; /* stack index of the aloop loop */
  ev_prepare prepare;
  ev_check check;
  ev_idle idle;       /* active while aloop has callbacks ready: the poll must not block */
  ev_timer aloop_due; /* aloop's next timer */
  ev_timer tick;      /* the host's own work */
  long ticks, steps;
  int failed;
  pthread_t thread;
  int has_thread;
  aloop_promise *promise;
  int ms;
} Host;

static Host host;

static void idle_cb(struct ev_loop *ev, ev_idle *w, int revents) {}
static void due_cb(struct ev_loop *ev, ev_timer *w, int revents) {}

static void tick_cb(struct ev_loop *ev, ev_timer *w, int revents) { host.ticks++; }

/* Before the host's poll: how long may it sleep, as far as aloop is concerned? */
static void prepare_cb(struct ev_loop *ev, ev_prepare *w, int revents) {
  double t = aloop_next_timeout(host.L, host.loop);
  ev_timer_stop(ev, &host.aloop_due);
  if (t == 0) {
    ev_idle_start(ev, &host.idle);
    return;
  }
  ev_idle_stop(ev, &host.idle);
  if (t > 0) {
    ev_timer_set(&host.aloop_due, t, 0.);
    ev_timer_start(ev, &host.aloop_due);
  }
}

/* After the host's poll: one aloop iteration. */
static void check_cb(struct ev_loop *ev, ev_check *w, int revents) {
  int rc = aloop_step(host.L, host.loop, ALOOP_STEP_NOPOLL);
  host.steps++;
  if (rc < 0) {
    fprintf(stderr, "host: aloop_step failed: %s\n", luaL_tolstring(host.L, -1, NULL));
    lua_pop(host.L, 2);
    host.failed = 1;
    ev_break(ev, EVBREAK_ALL);
  }
}

/* Lua: the script task's done callback. */
static int l_task_done(lua_State *L) {
  ev_break(host.ev, EVBREAK_ALL);
  return 0;
}

static int l_ticks(lua_State *L) {
  lua_pushinteger(L, host.ticks);
  return 1;
}

static int push_answer(lua_State *L, void *ud) {
  lua_pushliteral(L, "completed by a host thread");
  return 1;
}

static void *worker(void *arg) {
  struct timespec ts = {0, host.ms * 1000000L};
  nanosleep(&ts, NULL);
  aloop_promise_resolve(host.promise, push_answer, NULL);
  return NULL;
}

/* host.later(ms) -> Future completed by a host thread after ms milliseconds. It runs in the
   script's task (a coroutine: the main stack's indices mean nothing there), so the loop is
   its upvalue. */
static int l_later(lua_State *L) {
  host.ms = (int)luaL_checkinteger(L, 1);
  if (host.has_thread) return luaL_error(L, "host.later: one at a time");
  if (aloop_future_new(L, lua_upvalueindex(1)) != ALOOP_OK) return lua_error(L);
  host.promise = aloop_promise_new(L, -1);
  if (!host.promise) return lua_error(L);
  if (pthread_create(&host.thread, NULL, worker, NULL) != 0) {
    aloop_promise_cancel(host.promise);
    return luaL_error(L, "host.later: cannot start a thread");
  }
  host.has_thread = 1;
  return 1;
}

int main(int argc, char **argv) {
  const char *script = argc > 1 ? argv[1] : EXAMPLE_DIR "/host_evloop.lua";
  host.ev = ev_loop_new(EVFLAG_AUTO);
  lua_State *L = host.L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "aloop", luaopen_aloop, 1);
  lua_pop(L, 1);
  if (!aloop_new_loop(L, host.ev)) {
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    return 1;
  }
  host.loop = lua_gettop(L);

  /* The script as a task: loop:create_task(aio.coro(fn, hosttable)) */
  lua_getfield(L, host.loop, "create_task");
  lua_pushvalue(L, host.loop);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "aloop");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "coro");
  lua_remove(L, -2);
  if (luaL_loadfile(L, script) != LUA_OK) {
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    return 1;
  }
  lua_newtable(L);
  lua_pushcfunction(L, l_ticks);
  lua_setfield(L, -2, "ticks");
  lua_pushvalue(L, host.loop);
  lua_pushcclosure(L, l_later, 1);
  lua_setfield(L, -2, "later");
  lua_call(L, 2, 1);  /* aio.coro(fn, host) */
  lua_call(L, 2, 1);  /* loop:create_task(coro) */
  int task = lua_gettop(L);
  lua_getfield(L, task, "add_done_callback");
  lua_pushvalue(L, task);
  lua_pushcfunction(L, l_task_done);
  lua_call(L, 2, 0);

  ev_prepare_init(&host.prepare, prepare_cb);
  ev_prepare_start(host.ev, &host.prepare);
  ev_check_init(&host.check, check_cb);
  ev_set_priority(&host.check, EV_MINPRI);
  ev_check_start(host.ev, &host.check);
  ev_idle_init(&host.idle, idle_cb);
  ev_timer_init(&host.aloop_due, due_cb, 0., 0.);
  ev_timer_init(&host.tick, tick_cb, 0.005, 0.005);
  ev_timer_start(host.ev, &host.tick);

  ev_run(host.ev, 0); /* the host's main loop; aloop runs inside it */

  int status = host.failed;
  lua_getfield(L, task, "result");
  lua_pushvalue(L, task);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "host: the script failed: %s\n", luaL_tolstring(L, -1, NULL));
    status = 1;
  } else {
    printf("host: result: %s; aloop stepped by the host's ev_run: %s\n", lua_tostring(L, -1),
           host.steps > 5 ? "yes" : "no");
  }
  if (host.has_thread) pthread_join(host.thread, NULL);

  ev_prepare_stop(host.ev, &host.prepare);
  ev_check_stop(host.ev, &host.check);
  ev_idle_stop(host.ev, &host.idle);
  ev_timer_stop(host.ev, &host.aloop_due);
  ev_timer_stop(host.ev, &host.tick);
  if (aloop_close(L, host.loop) != ALOOP_OK) status = 1;
  lua_close(L);
  ev_loop_destroy(host.ev); /* after aloop is done with it */
  printf("host: loop closed, state closed, host loop destroyed\n");
  return status;
}
