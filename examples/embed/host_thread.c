/*
** A host program that embeds aloop (examples/embed/host_thread.lua is its script):
** - opens aloop in its own lua_State and makes a loop with aloop_new_loop;
** - exposes one host function, host.fetch(key, ms), that returns a Future at once and hands
**   an aloop_promise to a host OS thread, which completes it later (aloop_promise_resolve, or
**   aloop_promise_reject for an unknown key) from that thread;
** - runs the script as a task with aloop_run_until_complete, among other tasks it starts;
** - shuts down: joins its threads, aloop_close, lua_close (clean under valgrind and ASan).
** Usage: host_thread [script.lua]
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "aloop.h"

#ifndef EXAMPLE_DIR
#define EXAMPLE_DIR "examples/embed"
#endif

#define MAX_JOBS 16

/* A job for a host thread: the promise it must consume, and what to answer. */
typedef struct Job {
  pthread_t thread;
  aloop_promise *promise;
  char key[32];
  int ms;
} Job;

static Job jobs[MAX_JOBS];
static int njobs;

/* Runs on the loop thread: pushes the answer (ud is a malloc'd string, freed here). */
static int push_answer(lua_State *L, void *ud) {
  lua_pushstring(L, ud);
  free(ud);
  return 1;
}

static int push_not_found(lua_State *L, void *ud) {
  lua_pushfstring(L, "no such key: %s", (const char *)ud);
  free(ud);
  return 1;
}

static void *worker(void *arg) {
  Job *job = arg;
  struct timespec ts = {job->ms / 1000, (job->ms % 1000) * 1000000L};
  nanosleep(&ts, NULL); /* the "work" */
  if (strcmp(job->key, "missing") == 0) {
    char *key = strdup(job->key);
    if (aloop_promise_reject(job->promise, push_not_found, key) != ALOOP_OK) free(key);
  } else {
    char *answer = malloc(64);
    snprintf(answer, 64, "%s!", job->key);
    if (aloop_promise_resolve(job->promise, push_answer, answer) != ALOOP_OK) free(answer);
  }
  return NULL;
}

/* host.fetch(key, ms) -> Future (upvalue 1: the aloop table). */
static int l_fetch(lua_State *L) {
  const char *key = luaL_checkstring(L, 1);
  int ms = (int)luaL_checkinteger(L, 2);
  if (njobs == MAX_JOBS) return luaL_error(L, "host.fetch: too many jobs");
  lua_getfield(L, lua_upvalueindex(1), "get_running_loop");
  lua_call(L, 0, 1);
  if (aloop_future_new(L, -1) != ALOOP_OK) return lua_error(L);
  Job *job = &jobs[njobs];
  job->promise = aloop_promise_new(L, -1);
  if (!job->promise) return lua_error(L);
  snprintf(job->key, sizeof job->key, "%s", key);
  job->ms = ms;
  if (pthread_create(&job->thread, NULL, worker, job) != 0) {
    aloop_promise_cancel(job->promise);
    return luaL_error(L, "host.fetch: cannot start a thread");
  }
  njobs++;
  return 1; /* the future */
}

int main(int argc, char **argv) {
  const char *script = argc > 1 ? argv[1] : EXAMPLE_DIR "/host_thread.lua";
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "aloop", luaopen_aloop, 1);
  int aio = lua_gettop(L);

  if (!aloop_new_loop(L, NULL)) {
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    return 1;
  }
  int loop = lua_gettop(L);

  /* The script, called with the host table, runs as the main task. */
  if (luaL_loadfile(L, script) != LUA_OK) {
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    return 1;
  }
  int fn = lua_gettop(L);
  lua_newtable(L);
  lua_pushvalue(L, aio);
  lua_pushcclosure(L, l_fetch, 1);
  lua_setfield(L, -2, "fetch");
  int status = 0;
  /* The awaitable: aio.coro(fn, host), a deferred call of the script with its argument. */
  lua_getfield(L, aio, "coro");
  lua_insert(L, fn);
  lua_call(L, 2, 1);
  int n = aloop_run_until_complete(L, loop, -1);
  if (n < 0) {
    fprintf(stderr, "host: the script failed: %s\n", luaL_tolstring(L, -1, NULL));
    status = 1;
  } else {
    printf("host: result: %s\n", n > 0 ? lua_tostring(L, -n) : "(none)");
  }

  for (int i = 0; i < njobs; i++) pthread_join(jobs[i].thread, NULL);
  /* Late answers (the timed-out fetch) were posted to the loop: let them arrive and be
     dropped, then close. */
  lua_settop(L, loop);
  lua_getfield(L, aio, "coro");
  lua_getfield(L, aio, "sleep");
  lua_pushnumber(L, 0.001);
  lua_call(L, 2, 1);
  if (aloop_run_until_complete(L, loop, -1) < 0) status = 1;
  if (aloop_close(L, loop) != ALOOP_OK) status = 1;
  lua_close(L);
  printf("host: %d host threads joined, loop closed, state closed\n", njobs);
  return status;
}
