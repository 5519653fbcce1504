/*
** The C embedding API of include/aloop.h, driven by spec/embed_spec.lua. Each check prints
** "ok <name>" or "FAIL <name>: <why>"; the exit code is the number of failures. Covers: loops
** (own and the host's libev loop), futures from C, run_until_complete/run/step/next_timeout,
** promises completed from other OS threads, and bad use: completing a done future, a Task,
** calls from another OS thread while the loop runs, everything on a closed loop, stepping
** from inside the running loop.
*/
#include <ev.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "aloop.h"

static int failures;

static void check(int cond, const char *name, const char *why) {
  if (cond) printf("ok %s\n", name);
  else printf("FAIL %s: %s\n", name, why ? why : "");
  if (!cond) failures++;
}

/* tostring of the value on top (popped); static buffer. */
static const char *top_text(lua_State *L) {
  static char buf[512];
  snprintf(buf, sizeof buf, "%s", luaL_tolstring(L, -1, NULL));
  lua_pop(L, 2);
  return buf;
}

static void run_lua(lua_State *L, const char *code) {
  if (luaL_dostring(L, code) != LUA_OK) {
    fprintf(stderr, "embed_api: Lua error: %s\n", lua_tostring(L, -1));
    exit(100);
  }
}

static void msleep(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------------------------------- */

static int push_two(lua_State *L, void *ud) {
  lua_pushstring(L, ud);
  lua_pushinteger(L, 42);
  return 2;
}

static int push_err(lua_State *L, void *ud) {
  lua_pushliteral(L, "rejected by a thread");
  return 1;
}

static int push_raises(lua_State *L, void *ud) { return luaL_error(L, "push failed"); }

typedef struct Post {
  aloop_promise *p;
  int how; /* 0 resolve, 1 reject, 2 cancel, 3 resolve with a raising push */
  int ms;
  int rc;
} Post;

static void *poster(void *arg) {
  Post *po = arg;
  msleep(po->ms);
  if (po->how == 0) po->rc = aloop_promise_resolve(po->p, push_two, "from thread");
  else if (po->how == 1) po->rc = aloop_promise_reject(po->p, push_err, NULL);
  else if (po->how == 2) po->rc = aloop_promise_cancel(po->p);
  else po->rc = aloop_promise_resolve(po->p, push_raises, NULL);
  return NULL;
}

/* A thread that calls loop-thread entries while the loop runs on the main thread. */
typedef struct Intruder {
  lua_State *L;
  int loop, fut;
  int rc_set, rc_step, rc_new;
} Intruder;

static void *intruder_checked(void *arg) {
  Intruder *in = arg;
  /* nothing is pushed first: these must return ALOOP_ETHREAD before touching the state */
  in->rc_set = aloop_future_set_result(in->L, in->fut, 0);
  in->rc_step = aloop_step(in->L, in->loop, ALOOP_STEP_NOWAIT);
  in->rc_new = aloop_future_new(in->L, in->loop);
  return NULL;
}

static Intruder intr;

/* Lua: start_intruder(loop, fut) -- from a callback while the loop runs (stack indices are
   per call frame: the thread uses this frame's 1 and 2 while this call waits for it). */
static int l_start_intruder(lua_State *L) {
  intr.L = L;
  intr.loop = 1;
  intr.fut = 2;
  pthread_t th;
  pthread_create(&th, NULL, intruder_checked, &intr);
  pthread_join(th, NULL);
  return 0;
}

/* Lua: step_inside(loop) -- aloop_step from a callback of the running loop. */
static int l_step_inside(lua_State *L) {
  int rc = aloop_step(L, 1, ALOOP_STEP_NOWAIT);
  lua_pushinteger(L, rc);
  if (rc < 0) lua_insert(L, -2);
  else lua_pushnil(L);
  return 2;
}

static void host_timer_cb(struct ev_loop *ev, ev_timer *w, int revents) { *(int *)w->data += 1; }

int main(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);

  /* Before luaopen_aloop */
  check(aloop_new_loop(L, NULL) == NULL, "new_loop before luaopen_aloop fails", NULL);
  check(strstr(top_text(L), "luaopen_aloop") != NULL, "new_loop before open names the fix", NULL);

  luaL_requiref(L, "aloop", luaopen_aloop, 1);
  lua_setglobal(L, "aio");
  lua_register(L, "start_intruder", l_start_intruder);
  lua_register(L, "step_inside", l_step_inside);

  /* ---- futures on the loop thread */
  aloop_loop *lp = aloop_new_loop(L, NULL);
  check(lp != NULL && aloop_toloop(L, -1) == lp, "new_loop pushes a loop", NULL);
  int loop = lua_gettop(L);
  lua_pushvalue(L, loop);
  lua_setglobal(L, "loop");

  check(aloop_future_new(L, loop) == ALOOP_OK, "future_new", NULL);
  int fut = lua_gettop(L);
  lua_pushliteral(L, "a");
  lua_pushinteger(L, 2);
  check(aloop_future_set_result(L, fut, 2) == ALOOP_OK && lua_gettop(L) == fut,
        "set_result pops its values", NULL);
  lua_pushliteral(L, "again");
  int rc = aloop_future_set_result(L, fut, 1);
  check(rc == ALOOP_ESTATE && lua_gettop(L) == fut + 1, "set_result twice: ALOOP_ESTATE", NULL);
  lua_getglobal(L, "aio");
  lua_getfield(L, -1, "iserror");
  lua_pushvalue(L, -3);
  lua_getfield(L, -3, "InvalidStateError");
  lua_call(L, 2, 1);
  check(lua_toboolean(L, -1), "set_result twice pushes an InvalidStateError", NULL);
  lua_settop(L, fut + 1);
  check(strstr(top_text(L), "invalid state: finished") != NULL, "InvalidStateError says why", NULL);
  lua_pushliteral(L, "boom");
  check(aloop_future_set_exception(L, fut) == ALOOP_ESTATE && lua_gettop(L) == fut + 1,
        "set_exception on a done future: ALOOP_ESTATE", NULL);
  lua_settop(L, fut);
  int n = aloop_run_until_complete(L, loop, fut);
  check(n == 2 && strcmp(lua_tostring(L, -2), "a") == 0 && lua_tointeger(L, -1) == 2,
        "run_until_complete returns the future's results", NULL);
  lua_settop(L, loop);

  /* an exception set from C comes out of run_until_complete unchanged */
  aloop_future_new(L, loop);
  lua_pushliteral(L, "c error");
  check(aloop_future_set_exception(L, -2) == ALOOP_OK, "set_exception", NULL);
  n = aloop_run_until_complete(L, loop, -1);
  check(n == ALOOP_ERROR && strcmp(lua_tostring(L, -1), "c error") == 0,
        "run_until_complete fails with the future's error", NULL);
  lua_settop(L, loop);

  /* a Task is not completed from C */
  run_lua(L, "task = loop:create_task(function() return aio.sleep(0, 'task') end)");
  lua_getglobal(L, "task");
  lua_pushinteger(L, 1);
  rc = aloop_future_set_result(L, -2, 1);
  check(rc == ALOOP_ERROR && strstr(top_text(L), "not a Task") != NULL,
        "set_result on a Task: ALOOP_ERROR", NULL);
  n = aloop_run_until_complete(L, loop, -1);
  check(n == 1 && strcmp(lua_tostring(L, -1), "task") == 0, "run_until_complete(task)", NULL);
  lua_settop(L, loop);

  /* ---- stepping and next_timeout */
  check(aloop_next_timeout(L, loop) == -1, "next_timeout: nothing scheduled -> -1", NULL);
  run_lua(L, "count = 0; loop:call_soon(function() count = count + 1 end)");
  check(aloop_next_timeout(L, loop) == 0, "next_timeout: callbacks ready -> 0", NULL);
  check(aloop_step(L, loop, ALOOP_STEP_NOWAIT) == ALOOP_OK, "step NOWAIT", NULL);
  run_lua(L, "assert(count == 1, 'count ' .. count)");
  run_lua(L, "h = loop:call_later(0.05, function() count = count + 10 end)");
  double t = aloop_next_timeout(L, loop);
  check(t > 0.03 && t <= 0.05, "next_timeout: the earliest timer", NULL);
  check(aloop_step(L, loop, ALOOP_STEP_NOWAIT) == ALOOP_OK, "step NOWAIT with a timer", NULL);
  run_lua(L, "assert(count == 1, 'NOWAIT waited for the timer')");
  /* One WAIT step blocks until something happens; libev may wake it a hair before aloop's
     clock says the timer is due, so a host steps until the work is done. */
  run_lua(L, "t0 = loop:time()");
  int steps = 0;
  do {
    check(aloop_step(L, loop, ALOOP_STEP_WAIT) == ALOOP_OK, "step WAIT", NULL);
    lua_getglobal(L, "count");
  } while (lua_tointeger(L, -1) != 11 && ++steps < 10 && (lua_pop(L, 1), 1));
  lua_settop(L, loop);
  run_lua(L, "assert(count == 11, 'WAIT steps did not run the timer: ' .. count)\n"
             "assert(loop:time() - t0 > 0.03, 'WAIT did not block')");
  run_lua(L, "loop:call_soon(function() running_in_step = aio.get_running_loop() == loop end)");
  aloop_step(L, loop, ALOOP_STEP_NOWAIT);
  run_lua(L, "assert(running_in_step, 'the loop is not running during a step')");
  run_lua(L, "loop:call_soon(function() loop:stop() end)");
  check(aloop_step(L, loop, ALOOP_STEP_NOWAIT) == ALOOP_STOPPED, "step: loop:stop() -> STOPPED", NULL);
  check(aloop_step(L, loop, ALOOP_STEP_NOWAIT) == ALOOP_OK, "step: the stop request is consumed", NULL);
  run_lua(L, "loop:call_soon(function() error(aio.KeyboardInterrupt('kbi')) end)");
  rc = aloop_step(L, loop, ALOOP_STEP_NOWAIT);
  check(rc == ALOOP_ERROR && strstr(top_text(L), "KeyboardInterrupt") != NULL,
        "step: a KeyboardInterrupt from a callback fails the step", NULL);
  check(aloop_step(L, loop, 7) == ALOOP_ERROR, "step: unknown mode", NULL);
  lua_settop(L, loop);
  run_lua(L, "loop:call_soon(function() inside_rc, inside_err = step_inside(loop) end)\n"
             "loop:call_soon(loop.stop, loop)\nloop:run_forever()");
  run_lua(L, "assert(inside_rc == -2 and inside_err:find('already running'), tostring(inside_err))");
  check(1, "step from inside the running loop: ALOOP_ERROR 'already running'", NULL);
  lua_pushinteger(L, 5);
  check(aloop_step(L, -1, ALOOP_STEP_NOWAIT) == ALOOP_ERROR, "step on a non-loop", NULL);
  lua_settop(L, loop);

  /* ---- promises from other OS threads */
  Post posts[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    aloop_future_new(L, loop);
    posts[i].p = aloop_promise_new(L, -1);
    posts[i].how = i;
    posts[i].ms = 5 * (i + 1);
    pthread_create(&th[i], NULL, poster, &posts[i]);
  }
  int f0 = loop + 1;
  /* gather with return_exceptions, as a table of {ok, values...} per future */
  lua_pushvalue(L, loop); /* keep the loop at the top for run_until_complete */
  run_lua(L, "results = {}\n"
             "function collect(...)\n"
             "  local futs = {...}\n"
             "  return loop:create_task(function()\n"
             "    for i, f in ipairs(futs) do results[i] = table.pack(pcall(f.await, f)) end\n"
             "  end)\n"
             "end");
  lua_getglobal(L, "collect");
  for (int i = 0; i < 4; i++) lua_pushvalue(L, f0 + i);
  lua_call(L, 4, 1);
  n = aloop_run_until_complete(L, loop, -1);
  check(n == 0, "run_until_complete waits for the threads' completions", n < 0 ? top_text(L) : NULL);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  check(posts[0].rc == ALOOP_OK && posts[1].rc == ALOOP_OK && posts[2].rc == ALOOP_OK &&
            posts[3].rc == ALOOP_OK, "resolve/reject/cancel from threads return ALOOP_OK", NULL);
  run_lua(L, "local r = results\n"
             "assert(r[1][1] and r[1][2] == 'from thread' and r[1][3] == 42, 'resolve')\n"
             "assert(not r[2][1] and r[2][2] == 'rejected by a thread', 'reject')\n"
             "assert(not r[3][1] and aio.iserror(r[3][2], aio.CancelledError), 'cancel')\n"
             "assert(not r[4][1] and tostring(r[4][2]):find('push failed'), 'raising push')\n");
  check(1, "resolve (two values), reject, cancel, a raising push becomes the exception", NULL);
  lua_settop(L, loop);

  /* a promise for a future cancelled meanwhile: dropped quietly; finished: reported */
  run_lua(L, "reports = {}\n"
             "loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)");
  aloop_future_new(L, loop);
  Post late = {aloop_promise_new(L, -1), 0, 0, 0};
  aloop_future_new(L, loop);
  Post twice = {aloop_promise_new(L, -1), 0, 0, 0};
  lua_setglobal(L, "f_twice");
  lua_setglobal(L, "f_late");
  run_lua(L, "f_late:cancel(); f_twice:set_result('first')");
  poster(&late);
  poster(&twice);
  run_lua(L, "loop:run_until_complete(aio.sleep, 0.001)\n"
             "assert(f_twice:result() == 'first')\n"
             "assert(#reports == 1, #reports .. ' reports')\n"
             "assert(aio.iserror(reports[1].exception, aio.InvalidStateError), "
             "tostring(reports[1].exception))\n"
             "loop:set_exception_handler(nil)");
  check(1, "completing a cancelled future is dropped; a finished one reports InvalidStateError", NULL);
  lua_settop(L, loop);

  /* promise_new on a done future */
  aloop_future_new(L, loop);
  lua_pushboolean(L, 1);
  aloop_future_set_result(L, -2, 1);
  check(aloop_promise_new(L, -1) == NULL && strstr(top_text(L), "invalid state") != NULL,
        "promise_new on a done future: NULL + InvalidStateError", NULL);
  lua_settop(L, loop);

  /* ---- another OS thread calling loop-thread entries while the loop runs */
  run_lua(L, "loop:call_soon(start_intruder, loop, loop:create_future())\n"
             "loop:call_soon(loop.stop, loop); loop:run_forever()");
  check(intr.rc_set == ALOOP_ETHREAD && intr.rc_step == ALOOP_ETHREAD && intr.rc_new == ALOOP_ETHREAD,
        "from another thread while the loop runs: ALOOP_ETHREAD", NULL);
  if (failures) fprintf(stderr, "intruder: %d %d %d\n", intr.rc_set, intr.rc_step, intr.rc_new);
  lua_settop(L, loop);

  /* ---- a completion posted but not run when the loop closes: dropped and freed */
  aloop_future_new(L, loop);
  Post pending = {aloop_promise_new(L, -1), 0, 0, 0};
  poster(&pending);
  aloop_future_new(L, loop);
  aloop_promise *unposted = aloop_promise_new(L, -1);
  lua_settop(L, loop);

  /* ---- a closed loop */
  check(aloop_close(L, loop) == ALOOP_OK, "close", NULL);
  check(aloop_close(L, loop) == ALOOP_OK, "close twice", NULL);
  check(aloop_step(L, loop, ALOOP_STEP_NOWAIT) == ALOOP_ECLOSED, "step a closed loop: ALOOP_ECLOSED",
        NULL);
  check(strstr(top_text(L), "closed") != NULL, "the closed error says so", NULL);
  check(aloop_run(L, loop) == ALOOP_ECLOSED, "run a closed loop", NULL);
  lua_pop(L, 1);
  check(aloop_future_new(L, loop) == ALOOP_ECLOSED, "future_new on a closed loop", NULL);
  lua_pop(L, 1);
  check(aloop_call_threadsafe(lp, NULL, NULL) == ALOOP_ECLOSED, "call_threadsafe after close: -1",
        NULL);
  check(aloop_promise_resolve(unposted, NULL, NULL) == ALOOP_ECLOSED,
        "promise after close: ALOOP_ECLOSED", NULL);
  check(aloop_next_timeout(L, loop) == -1, "next_timeout of a closed loop", NULL);
  lua_settop(L, 0);

  /* ---- the host's own libev loop */
  struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
  int fired = 0;
  ev_timer ht;
  ev_timer_init(&ht, host_timer_cb, 0.01, 0.);
  ht.data = &fired;
  ev_timer_start(ev, &ht);
  check(aloop_new_loop(L, ev) != NULL, "new_loop around the host's ev loop", NULL);
  lua_setglobal(L, "hloop");
  run_lua(L, "hloop:run_until_complete(aio.sleep, 0.03)");
  check(fired == 1, "the host's watcher fires while aloop runs the shared loop", NULL);
  run_lua(L, "hloop:close()");
  ev_timer_start(ev, &ht);
  ev_run(ev, 0); /* aloop's watchers are gone: returns once the host timer fired */
  check(fired == 2, "the host's loop works after aloop closed (not destroyed by aloop)", NULL);
  run_lua(L, "hloop = nil; loop = nil; task = nil; f_late = nil; f_twice = nil collectgarbage()");
  lua_close(L);
  ev_loop_destroy(ev);
  printf("%d failures\n", failures);
  return failures;
}
