/*
** Loops in other OS threads (aio.thread.start_loop): a new thread with its own Lua state runs a
** loop's run_forever (serve in lua/aloop/threads/thread.lua); the starting state holds a Remote
** handle.
** Work reaches the remote loop only as marshalled calls posted to its thread-safe queue, under
** the handle's mutex while the loop is known to be alive, so nothing is posted to a freed loop.
*/
#include <stdlib.h>
#include <string.h>

#include "threads/threads.h"
#include "util/thread.h"

#define AL_REMOTE_MT "aloop.RemoteLoop"

enum { R_STARTING, R_RUNNING, R_STOPPING, R_DONE };

typedef struct Remote {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refs;  /* the handle and the thread */
  int state; /* R_* */
  al_Loop *loop; /* while RUNNING or STOPPING */
  pthread_t th;
  int joined;
  char *path, *cpath;
  char err[200]; /* why it stopped, if it failed */
  al_CFut *exited; /* finished when the thread is about to end */
} Remote;

static void remote_unref(Remote *r) {
  pthread_mutex_lock(&r->mu);
  int left = --r->refs;
  pthread_mutex_unlock(&r->mu);
  if (left > 0) return;
  al_cf_unref(r->exited);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  free(r->path);
  free(r->cpath);
  free(r);
}

static void remote_set_state(Remote *r, int state, al_Loop *loop) {
  pthread_mutex_lock(&r->mu);
  r->state = state;
  r->loop = loop;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

/* core._remote_state(r, "running", loop) / (r, "stopping") / (r, "done"), from serve. */
static int l_remote_state(lua_State *L) {
  Remote *r = lua_touserdata(L, 1);
  const char *s = luaL_checkstring(L, 2);
  pthread_mutex_lock(&r->mu);
  al_Loop *loop = r->loop;
  pthread_mutex_unlock(&r->mu);
  if (strcmp(s, "running") == 0) remote_set_state(r, R_RUNNING, al_checkloop(L, 3));
  else if (strcmp(s, "stopping") == 0) remote_set_state(r, R_STOPPING, loop);
  else remote_set_state(r, R_DONE, NULL);
  return 0;
}

static void *remote_main(void *arg) {
  Remote *r = arg;
  al_sigint_disable_thread(); /* signals are blocked here (al_thread_create) */
  lua_State *L = al_newstate(r->path, r->cpath);
  if (!L) {
    snprintf(r->err, sizeof r->err, "cannot create a Lua state for the loop's thread");
  } else {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "aloop.threads.thread");
    int st = lua_pcall(L, 1, 1, 0);
    if (st == LUA_OK) {
      lua_getfield(L, -1, "serve");
      lua_pushlightuserdata(L, r);
      st = lua_pcall(L, 1, 0, 0);
    }
    if (st != LUA_OK) {
      pthread_mutex_lock(&r->mu);
      snprintf(r->err, sizeof r->err, "%s", luaL_tolstring(L, -1, NULL));
      pthread_mutex_unlock(&r->mu);
    }
    lua_close(L);
  }
  remote_set_state(r, R_DONE, NULL);
  al_Buf none = {0};
  al_cf_finish(r->exited, 1, &none);
  remote_unref(r);
  return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Posting work */

typedef struct Post {
  al_Buf in;    /* marshalled function + arguments */
  al_CFut *cf;  /* run_coroutine_threadsafe: its future, else NULL */
} Post;

static void post_free(Post *p) {
  al_buf_free(&p->in);
  if (p->cf) al_cf_unref(p->cf);
  free(p);
}

/* On the remote thread (a thread-safe call): fn(...), or start_coro(cf, fn, ...) of
** aloop.threads.thread. */
static int post_run_p(lua_State *L) {
  Post *p = lua_touserdata(L, 1);
  lua_settop(L, 0);
  if (p->cf) {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "aloop.threads.thread");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "start_coro");
    lua_replace(L, 1);
    lua_settop(L, 1);
    al_cf_push(L, p->cf);
  }
  int base = lua_gettop(L);
  int n = al_unmarshal(L, p->in.p, p->in.len);
  lua_call(L, base + n - 1, 0);
  return 0;
}

static void post_run(lua_State *L, void *ud) {
  Post *p = ud;
  lua_pushcfunction(L, post_run_p);
  lua_pushlightuserdata(L, p);
  int st = lua_pcall(L, 1, 0, 0);
  if (st != LUA_OK && p->cf) { /* could not even start: the caller gets the error */
    al_Buf out;
    al_error_to_bytes(L, -1, &out);
    al_cf_finish(p->cf, 0, &out);
  }
  post_free(p);
  if (st != LUA_OK) lua_error(L); /* reported by the loop's exception handler */
}

/* The remote loop closed before the post ran: its future fails. */
static void post_drop(void *ud) {
  Post *p = ud;
  if (p->cf) {
    al_Buf out = {0};
    al_error_bytes(&out, "aloop: the loop in the other thread stopped before the coroutine started");
    al_cf_finish(p->cf, 0, &out);
  }
  post_free(p);
}

typedef struct RemoteBox {
  Remote *r;
  uint32_t magic; /* REMOTE_MAGIC */
} RemoteBox;

#define REMOTE_MAGIC 0x726d7465u /* "rmte" (al_toudata) */

static Remote *checkremote(lua_State *L) {
  RemoteBox *box = AL_CHECKUDATA(L, 1, RemoteBox, REMOTE_MAGIC, AL_REMOTE_MT);
  return box->r;
}

/* Posts fn(...) (the n values from `first`); raises when the remote loop is not running. */
static void remote_post(lua_State *L, Remote *r, al_CFut *cf, int first, int n, const char *what) {
  al_Buf *b = al_marshal(L, first, n, 1, what);
  Post *p = malloc(sizeof *p);
  if (!p) luaL_error(L, "aloop: out of memory");
  p->in = *b;
  memset(b, 0, sizeof *b);
  p->cf = cf;
  if (cf) al_cf_ref(cf); /* the post's reference */
  pthread_mutex_lock(&r->mu);
  while (r->state == R_STARTING) pthread_cond_wait(&r->cv, &r->mu);
  int ok = r->state == R_RUNNING && al_call_threadsafe(r->loop, post_run, post_drop, p) == 0;
  pthread_mutex_unlock(&r->mu);
  if (!ok) {
    post_free(p);
    al_error_raise(L, "InvalidStateError", "%s: the loop in the other thread has stopped%s%s", what,
                   r->err[0] ? ": " : "", r->err);
  }
}

/* remote:call_soon_threadsafe(fn, ...) */
static int remote_call_soon(lua_State *L) {
  Remote *r = checkremote(L);
  remote_post(L, r, NULL, 2, lua_gettop(L) - 1, "aloop: remote:call_soon_threadsafe");
  return 0;
}

/* remote:_run_coro(fn, ...) -> ConcurrentFuture (see aio.run_coroutine_threadsafe) */
static int remote_run_coro(lua_State *L) {
  Remote *r = checkremote(L);
  int n = lua_gettop(L) - 1;
  al_CFut *cf = al_cf_new();
  if (!cf) return luaL_error(L, "aloop: out of memory");
  al_cf_push(L, cf); /* the Lua object owns the only reference now */
  al_cf_unref(cf);
  remote_post(L, r, cf, 2, n, "aloop.run_coroutine_threadsafe");
  lua_pushvalue(L, n + 2);
  return 1;
}

/*
** Cancelling the concurrent future of a coroutine that runs on a remote loop cancels its task
** there: the cancel hook posts aloop.threads.thread's cancel_coro(cf) to the remote loop (the
** future is marked cancelled at once, as in asyncio). The hook holds a reference to the Remote.
*/
static void cancel_run(lua_State *L, void *ud) {
  al_CFut *cf = ud;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "aloop.threads.thread");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "cancel_coro");
  al_cf_push(L, cf);
  al_cf_unref(cf); /* the post's reference (the Lua object holds one now) */
  lua_call(L, 1, 0);
}

static void cancel_drop(void *ud) { al_cf_unref(ud); }

static void remote_cancel(al_CFut *cf, void *ud) { /* under cf->mu */
  Remote *r = ud;
  cf->refs++; /* for the post */
  pthread_mutex_lock(&r->mu);
  int ok = r->loop && al_call_threadsafe(r->loop, cancel_run, cancel_drop, cf) == 0;
  pthread_mutex_unlock(&r->mu);
  if (!ok) cf->refs--;
}

static void remote_cancel_free(void *ud) { remote_unref(ud); }

/* cf:_cancel_via(r) in the remote state: cancel() of cf will cancel the task there. */
static int l_cf_cancel_via(lua_State *L) {
  al_CFut *cf = al_cf_check(L, 1);
  Remote *r = lua_touserdata(L, 2);
  luaL_argcheck(L, r != NULL, 2, "remote expected");
  pthread_mutex_lock(&r->mu);
  r->refs++;
  pthread_mutex_unlock(&r->mu);
  al_cf_set_canceller(cf, remote_cancel, remote_cancel_free, r);
  return 0;
}

/* remote:stop(): asks the remote loop to stop (a no-op when it already has). */
static void stop_cb(lua_State *L, void *ud) {
  Remote *r = ud;
  pthread_mutex_lock(&r->mu);
  al_Loop *loop = r->loop;
  pthread_mutex_unlock(&r->mu);
  if (loop) {
    al_push_loop(L, loop);
    lua_getfield(L, -1, "stop");
    lua_insert(L, -2);
    lua_call(L, 1, 0);
  }
}

/* Asks a running remote loop to stop (after what was posted before). */
static void remote_request_stop(Remote *r) {
  pthread_mutex_lock(&r->mu);
  while (r->state == R_STARTING) pthread_cond_wait(&r->cv, &r->mu);
  if (r->state == R_RUNNING) aloop_call_threadsafe(r->loop, stop_cb, r);
  pthread_mutex_unlock(&r->mu);
}

static int remote_stop(lua_State *L) {
  remote_request_stop(checkremote(L));
  return 0;
}

/* remote:_join(): waits (blocking this thread) for the thread to end. */
static void remote_join_thread(Remote *r) {
  pthread_mutex_lock(&r->mu);
  int join = !r->joined;
  r->joined = 1;
  pthread_mutex_unlock(&r->mu);
  if (join) pthread_join(r->th, NULL);
}

static int remote_join(lua_State *L) {
  remote_join_thread(checkremote(L));
  return 0;
}

/* remote:_exited() -> ConcurrentFuture finished when the thread ends (to await it). */
static int remote_exited(lua_State *L) {
  al_cf_push(L, checkremote(L)->exited);
  return 1;
}

/* remote:is_running(), remote:error() */
static int remote_is_running(lua_State *L) {
  Remote *r = checkremote(L);
  pthread_mutex_lock(&r->mu);
  lua_pushboolean(L, r->state == R_STARTING || r->state == R_RUNNING);
  pthread_mutex_unlock(&r->mu);
  return 1;
}

static int remote_gc(lua_State *L) {
  RemoteBox *box = lua_touserdata(L, 1);
  Remote *r = box->r;
  if (!r) return 0;
  box->r = NULL;
  remote_request_stop(r);
  remote_join_thread(r); /* the thread holds its own reference until it ends */
  remote_unref(r);
  return 0;
}

/* local remote <close> = aio.thread.start_loop(): stops the loop and joins its thread. */
static int remote_close(lua_State *L) {
  Remote *r = checkremote(L);
  remote_request_stop(r);
  remote_join_thread(r);
  return 0;
}

/* core._start_loop() -> remote handle; the thread starts at once. */
static int l_start_loop(lua_State *L) {
  RemoteBox *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->r = NULL;
  box->magic = REMOTE_MAGIC;
  luaL_setmetatable(L, AL_REMOTE_MT);
  Remote *r = calloc(1, sizeof *r);
  if (!r || !(r->exited = al_cf_new())) {
    free(r);
    return luaL_error(L, "aloop: out of memory");
  }
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  r->refs = 2;
  r->state = R_STARTING;
  al_copy_paths(L, &r->path, &r->cpath);
  if (al_thread_create(&r->th, AL_THREAD_JOINABLE, 0, remote_main, r) != 0) {
    r->refs = 1;
    r->joined = 1;
    r->state = R_DONE;
    box->r = r;
    return luaL_error(L, "aloop.thread.start_loop: cannot start a thread");
  }
  box->r = r;
  return 1;
}

static const luaL_Reg remote_methods[] = {
    {"call_soon_threadsafe", remote_call_soon},
    {"_run_coro", remote_run_coro},
    {"stop", remote_stop},
    {"_join", remote_join},
    {"_exited", remote_exited},
    {"is_running", remote_is_running},
    {NULL, NULL},
};

static const luaL_Reg remote_meta[] = {
    {"__gc", remote_gc},
    {"__close", remote_close},
    {NULL, NULL},
};

void al_remote_open(lua_State *L, int core) {
  al_new_class(L, AL_REMOTE_MT, remote_methods, remote_meta);
  lua_setfield(L, core, "RemoteLoop");
  lua_setfield(L, core, "_RemoteLoop_mt"); /* for the Lua modules' type checks */
  lua_pushcfunction(L, l_start_loop);
  lua_setfield(L, core, "_start_loop");
  lua_pushcfunction(L, l_remote_state);
  lua_setfield(L, core, "_remote_state");
  lua_pushcfunction(L, l_cf_cancel_via);
  lua_setfield(L, core, "_cf_cancel_via");
}
