/*
** aloop_call_threadsafe from many OS threads (driven by spec/threadsafe_spec.lua).
**
** Phase 1: 8 threads post 10,000 calls each to a running loop. The threads are released only
** once the loop runs with nothing else to do (from a loop callback), so every post reaches a
** loop that waits; each call increments a counter on the loop thread, and the call that
** brings it to 80,000 stops the loop (Lua `loop:stop()`). Nothing else keeps the loop alive,
** so it must stay running while calls are pending and must not lose any.
** Phase 2: run_until_complete(fut) on a future that only a posted call completes: the loop
** must wait for the post rather than give up.
** Phase 3: a posted call that raises is reported through the exception handler and the loop
** goes on; one that raises aio.KeyboardInterrupt makes run_forever raise it.
** Phase 4: after loop:close(), a post returns -1 (and does not crash or run).
** Prints "posted=N ran=N after_close=-1", "phase2=<result>" and "phase3=<what happened>";
** exit code 0 when all is well.
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "aloop.h"

#define NTHREADS 8
#define PER_THREAD 10000
#define TOTAL (NTHREADS * PER_THREAD)

static aloop_loop *the_loop;
static long ran;          /* touched only on the loop thread */
static long ran_after_close;
static int posted[NTHREADS]; /* successful posts per thread */
static int failed[NTHREADS];

static pthread_mutex_t go_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go_cv = PTHREAD_COND_INITIALIZER;
static int go;

static void fail(const char *what) {
  fprintf(stderr, "threadsafe_post: %s\n", what);
  exit(2);
}

/* Runs Lua `loop:stop()` on the loop thread (inside aloop's protected call). */
static void stop_loop(lua_State *L) {
  lua_getglobal(L, "loop");
  lua_getfield(L, -1, "stop");
  lua_insert(L, -2);
  lua_call(L, 1, 0);
}

static void counted(lua_State *L, void *ud) {
  (void)ud;
  if (++ran == TOTAL) stop_loop(L);
}

static void after_close(lua_State *L, void *ud) {
  (void)L, (void)ud;
  ran_after_close++;
}

static void *poster(void *arg) {
  int id = (int)(long)arg;
  pthread_mutex_lock(&go_mu);
  while (!go) pthread_cond_wait(&go_cv, &go_mu);
  pthread_mutex_unlock(&go_mu);
  for (int i = 0; i < PER_THREAD; i++) {
    if (aloop_call_threadsafe(the_loop, counted, NULL) == 0) posted[id]++;
    else failed[id]++;
  }
  return NULL;
}

/* Lua: release_threads() -- called from a loop callback once the loop runs. */
static int l_release_threads(lua_State *L) {
  (void)L;
  pthread_mutex_lock(&go_mu);
  go = 1;
  pthread_cond_broadcast(&go_cv);
  pthread_mutex_unlock(&go_mu);
  return 0;
}

/* Lua: ran_count() */
static int l_ran_count(lua_State *L) {
  lua_pushinteger(L, ran);
  return 1;
}

/* Phase 2: a thread posts one call that completes the global future `fut`. */
static void complete_fut(lua_State *L, void *ud) {
  (void)ud;
  lua_getglobal(L, "fut");
  lua_getfield(L, -1, "set_result");
  lua_insert(L, -2);
  lua_pushliteral(L, "from-thread");
  lua_call(L, 2, 0);
}

/* Phase 3: posted calls that raise. */
static void raise_error(lua_State *L, void *ud) {
  (void)ud;
  luaL_error(L, "posted call failed");
}

static void raise_interrupt(lua_State *L, void *ud) {
  (void)ud;
  luaL_loadstring(L, "error(aloop.KeyboardInterrupt('from a post'))");
  lua_call(L, 0, 0);
}

static void post_stop(lua_State *L, void *ud) {
  (void)ud;
  stop_loop(L); /* so that a lost KeyboardInterrupt shows as "returned", not as a hang */
}

static void *completer(void *arg) {
  (void)arg;
  pthread_mutex_lock(&go_mu);
  while (go != 2) pthread_cond_wait(&go_cv, &go_mu);
  pthread_mutex_unlock(&go_mu);
  if (aloop_call_threadsafe(the_loop, complete_fut, NULL) != 0) fail("phase 2 post failed");
  return NULL;
}

static int l_release_completer(lua_State *L) {
  (void)L;
  pthread_mutex_lock(&go_mu);
  go = 2;
  pthread_cond_broadcast(&go_cv);
  pthread_mutex_unlock(&go_mu);
  return 0;
}

static void dostring(lua_State *L, const char *code) {
  if (luaL_dostring(L, code) != LUA_OK) {
    fprintf(stderr, "threadsafe_post: Lua error: %s\n", luaL_tolstring(L, -1, NULL));
    exit(2);
  }
}

int main(void) {
  lua_State *L = luaL_newstate();
  if (!L) fail("cannot create a Lua state");
  luaL_openlibs(L);
  luaL_requiref(L, "aloop", luaopen_aloop, 1);
  lua_pop(L, 1);
  lua_register(L, "release_threads", l_release_threads);
  lua_register(L, "release_completer", l_release_completer);
  lua_register(L, "ran_count", l_ran_count);

  dostring(L, "loop = aloop.new_event_loop()");
  lua_getglobal(L, "loop");
  the_loop = aloop_toloop(L, -1);
  lua_pop(L, 1);
  if (!the_loop) fail("aloop_toloop returned NULL for a loop");
  lua_pushinteger(L, 1);
  if (aloop_toloop(L, -1) != NULL) fail("aloop_toloop accepted a number");
  lua_pop(L, 1);

  /* Phase 1 */
  pthread_t th[NTHREADS];
  for (long i = 0; i < NTHREADS; i++)
    if (pthread_create(&th[i], NULL, poster, (void *)i) != 0) fail("pthread_create");
  dostring(L,
           "loop:call_soon(release_threads)\n"
           "loop:run_forever()\n"
           "assert(not loop:is_running())\n"
           "stopped_at = ran_count()\n");
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  long nposted = 0, nfailed = 0;
  for (int i = 0; i < NTHREADS; i++) nposted += posted[i], nfailed += failed[i];
  lua_getglobal(L, "stopped_at");
  long stopped_at = (long)lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (nfailed) fprintf(stderr, "threadsafe_post: %ld posts failed on an open loop\n", nfailed);
  if (stopped_at != TOTAL)
    fprintf(stderr, "threadsafe_post: run_forever returned after %ld of %d calls\n", stopped_at,
            TOTAL);

  /* Phase 2 */
  pthread_t ct;
  if (pthread_create(&ct, NULL, completer, NULL) != 0) fail("pthread_create");
  dostring(L,
           "fut = loop:create_future()\n"
           "loop:call_soon(release_completer)\n"
           "phase2 = loop:run_until_complete(fut)\n");
  pthread_join(ct, NULL);
  lua_getglobal(L, "phase2");
  const char *phase2 = lua_tostring(L, -1);
  char phase2_buf[64];
  snprintf(phase2_buf, sizeof phase2_buf, "%s", phase2 ? phase2 : "(nil)");
  lua_pop(L, 1);

  /* Phase 3 */
  if (aloop_call_threadsafe(the_loop, raise_error, NULL) != 0 ||
      aloop_call_threadsafe(the_loop, counted, NULL) != 0 ||
      aloop_call_threadsafe(the_loop, raise_interrupt, NULL) != 0 ||
      aloop_call_threadsafe(the_loop, post_stop, NULL) != 0)
    fail("phase 3 post failed");
  dostring(L,
           "local reported = {}\n"
           "loop:set_exception_handler(function(_, ctx)\n"
           "  reported[#reported + 1] = ctx.message .. ' / ' .. tostring(ctx.exception)\n"
           "end)\n"
           "local ok, err = pcall(loop.run_forever, loop)\n"
           "phase3 = string.format('%s; %d reported: %s; ran=%d', "
           "  ok and 'returned' or aloop.iserror(err, aloop.KeyboardInterrupt) and 'interrupted' or tostring(err),\n"
           "  #reported, reported[1], ran_count())\n"
           "loop:set_exception_handler(nil)\n");
  lua_getglobal(L, "phase3");
  char phase3_buf[256];
  snprintf(phase3_buf, sizeof phase3_buf, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(nil)");
  lua_pop(L, 1);

  /* Phase 4 */
  dostring(L, "loop:close()");
  int after = aloop_call_threadsafe(the_loop, after_close, NULL);
  dostring(L, "assert(loop:is_closed())");

  printf("posted=%ld ran=%ld after_close=%d\n", nposted, stopped_at, after);
  printf("phase2=%s\n", phase2_buf);
  printf("phase3=%s\n", phase3_buf);
  fflush(stdout);
  int ok = nposted == TOTAL && ran == TOTAL + 1 && stopped_at == TOTAL && after == -1 &&
           ran_after_close == 0 && strcmp(phase2_buf, "from-thread") == 0 &&
           strcmp(phase3_buf, "interrupted; 1 reported: Exception in a thread-safe call / "
                              "posted call failed; ran=80001") == 0;
  dostring(L, "loop = nil fut = nil collectgarbage()");
  lua_close(L);
  return ok ? 0 : 1;
}
