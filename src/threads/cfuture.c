/*
** Concurrent futures (concurrent.futures.Future): the result of work done in another OS thread
** or process. A C struct under a mutex, reference-counted, completed by whichever thread did the
** work; its result is marshalled bytes, so any Lua state can read it. Lua objects of the class
** aloop.ConcurrentFuture hold a reference; a loop future "wraps" one through a thread-safe call.
** The Lua side (lua/aloop/executor.lua) adds result(timeout), await() and the iterators.
*/
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "threads/threads.h"

/* Timed waits use the monotonic clock (as the loops do), immune to changes of the wall clock. */
static void cond_init_monotonic(pthread_cond_t *cv) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(cv, &ca);
  pthread_condattr_destroy(&ca);
}

static void deadline_after(double timeout, struct timespec *dl) {
  clock_gettime(CLOCK_MONOTONIC, dl);
  double whole = floor(timeout);
  dl->tv_sec += (time_t)whole;
  dl->tv_nsec += (long)((timeout - whole) * 1e9);
  if (dl->tv_nsec >= 1000000000L) dl->tv_sec++, dl->tv_nsec -= 1000000000L;
}

al_CFut *al_cf_new(void) {
  al_CFut *cf = calloc(1, sizeof *cf);
  if (!cf) return NULL;
  pthread_mutex_init(&cf->mu, NULL);
  cond_init_monotonic(&cf->cv);
  cf->refs = 1;
  cf->state = AL_CF_PENDING;
  return cf;
}

void al_cf_ref(al_CFut *cf) {
  pthread_mutex_lock(&cf->mu);
  cf->refs++;
  pthread_mutex_unlock(&cf->mu);
}

void al_cf_unref(al_CFut *cf) {
  pthread_mutex_lock(&cf->mu);
  int left = --cf->refs;
  pthread_mutex_unlock(&cf->mu);
  if (left > 0) return;
  if (cf->cancel_free) cf->cancel_free(cf->cancel_ud); /* work that never finished */
  al_CWaiter *w = cf->waiters; /* none left when done; a pending one nobody completes */
  while (w) {
    al_CWaiter *next = w->next;
    free(w);
    w = next;
  }
  al_buf_free(&cf->out);
  pthread_mutex_destroy(&cf->mu);
  pthread_cond_destroy(&cf->cv);
  free(cf);
}

int al_cf_start(al_CFut *cf) {
  pthread_mutex_lock(&cf->mu);
  int ok = cf->state == AL_CF_PENDING;
  if (ok) cf->state = AL_CF_RUNNING;
  pthread_mutex_unlock(&cf->mu);
  return ok;
}

/* Called with mu held and the state just set to done: wakes blockers, runs the waiters. */
static void cf_done_locked(al_CFut *cf) {
  al_CWaiter *w = cf->waiters;
  cf->waiters = NULL;
  void (*cancel_free)(void *) = cf->cancel_free;
  void *cancel_ud = cf->cancel_ud;
  cf->cancel_fn = NULL;
  cf->cancel_free = NULL;
  pthread_cond_broadcast(&cf->cv);
  cf->refs++; /* the waiters may drop the last other reference */
  pthread_mutex_unlock(&cf->mu);
  if (cancel_free) cancel_free(cancel_ud);
  while (w) {
    al_CWaiter *next = w->next;
    w->fn(cf, w->ud);
    free(w);
    w = next;
  }
  al_cf_unref(cf);
}

void al_cf_finish(al_CFut *cf, int ok, al_Buf *out) {
  pthread_mutex_lock(&cf->mu);
  if (cf->state == AL_CF_FINISHED || cf->state == AL_CF_CANCELLED) {
    pthread_mutex_unlock(&cf->mu);
    al_buf_free(out);
    return;
  }
  cf->state = AL_CF_FINISHED;
  cf->ok = ok;
  cf->out = *out;
  memset(out, 0, sizeof *out);
  cf_done_locked(cf);
}

int al_cf_cancel(al_CFut *cf) {
  pthread_mutex_lock(&cf->mu);
  if (cf->state == AL_CF_CANCELLED) {
    pthread_mutex_unlock(&cf->mu);
    return 1;
  }
  if (cf->state == AL_CF_RUNNING && cf->cancel_fn) { /* e.g. a task on a remote loop */
    void (*fn)(al_CFut *, void *) = cf->cancel_fn;
    cf->cancel_fn = NULL;
    cf->state = AL_CF_CANCELLED;
    fn(cf, cf->cancel_ud);
    cf_done_locked(cf);
    return 1;
  }
  if (cf->state != AL_CF_PENDING) {
    pthread_mutex_unlock(&cf->mu);
    return 0;
  }
  cf->state = AL_CF_CANCELLED;
  cf_done_locked(cf);
  return 1;
}

void al_cf_set_canceller(al_CFut *cf, void (*fn)(al_CFut *, void *), void (*free_ud)(void *),
                         void *ud) {
  pthread_mutex_lock(&cf->mu);
  int pending = cf->state == AL_CF_PENDING || cf->state == AL_CF_RUNNING;
  if (pending) {
    cf->cancel_fn = fn;
    cf->cancel_free = free_ud;
    cf->cancel_ud = ud;
  }
  pthread_mutex_unlock(&cf->mu);
  if (!pending) free_ud(ud);
}

/* Calls fn(cf, ud) once the future is done (at once, on this thread, when it is). */
static void cf_on_done(al_CFut *cf, al_cf_notify fn, void *ud) {
  al_CWaiter *w = malloc(sizeof *w);
  pthread_mutex_lock(&cf->mu);
  if (cf->state == AL_CF_PENDING || cf->state == AL_CF_RUNNING) {
    if (w) {
      w->fn = fn;
      w->ud = ud;
      w->next = cf->waiters;
      cf->waiters = w;
      pthread_mutex_unlock(&cf->mu);
      return;
    }
  }
  pthread_mutex_unlock(&cf->mu);
  free(w);
  fn(cf, ud);
}

/* ---------------------------------------------------------------------------------------- */
/* Lua objects */

typedef struct CFutBox {
  al_CFut *cf;
  uint32_t magic; /* CFUT_MAGIC */
} CFutBox;

#define CFUT_MAGIC 0x63667574u    /* "cfut" (al_toudata) */
#define WAITSET_MAGIC 0x77736574u /* "wset" */

void al_cf_push(lua_State *L, al_CFut *cf) {
  CFutBox *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->cf = cf;
  box->magic = CFUT_MAGIC;
  al_cf_ref(cf);
  luaL_setmetatable(L, AL_CFUTURE_MT);
}

al_CFut *al_cf_check(lua_State *L, int idx) {
  return AL_CHECKUDATA(L, idx, CFutBox, CFUT_MAGIC, AL_CFUTURE_MT)->cf;
}

static int cf_gc(lua_State *L) {
  CFutBox *box = lua_touserdata(L, 1);
  if (box->cf) al_cf_unref(box->cf);
  box->cf = NULL;
  return 0;
}

static int cf_state(al_CFut *cf) {
  pthread_mutex_lock(&cf->mu);
  int s = cf->state;
  pthread_mutex_unlock(&cf->mu);
  return s;
}

static int cf_done(lua_State *L) {
  int s = cf_state(al_cf_check(L, 1));
  lua_pushboolean(L, s == AL_CF_FINISHED || s == AL_CF_CANCELLED);
  return 1;
}

static int cf_cancelled(lua_State *L) {
  lua_pushboolean(L, cf_state(al_cf_check(L, 1)) == AL_CF_CANCELLED);
  return 1;
}

static int cf_running(lua_State *L) {
  lua_pushboolean(L, cf_state(al_cf_check(L, 1)) == AL_CF_RUNNING);
  return 1;
}

static int cf_cancel(lua_State *L) {
  lua_pushboolean(L, al_cf_cancel(al_cf_check(L, 1)));
  return 1;
}

/* cf:_wait(timeout or nil): blocks this OS thread until done; true when done. */
static int cf_wait(lua_State *L) {
  al_CFut *cf = al_cf_check(L, 1);
  double timeout = luaL_optnumber(L, 2, -1);
  struct timespec dl;
  if (timeout >= 0) deadline_after(timeout, &dl);
  pthread_mutex_lock(&cf->mu);
  while (cf->state == AL_CF_PENDING || cf->state == AL_CF_RUNNING) {
    if (timeout < 0) pthread_cond_wait(&cf->cv, &cf->mu);
    else if (pthread_cond_timedwait(&cf->cv, &cf->mu, &dl) == ETIMEDOUT) break;
  }
  int done = cf->state == AL_CF_FINISHED || cf->state == AL_CF_CANCELLED;
  pthread_mutex_unlock(&cf->mu);
  lua_pushboolean(L, done);
  return 1;
}

/* Pushes the results of a done cf, or raises its error (CancelledError when cancelled). */
static int cf_push_outcome(lua_State *L, al_CFut *cf) {
  pthread_mutex_lock(&cf->mu);
  int s = cf->state, ok = cf->ok;
  pthread_mutex_unlock(&cf->mu); /* out is immutable once done */
  if (s == AL_CF_CANCELLED) return al_error_raise(L, "CancelledError", "the future was cancelled");
  if (s != AL_CF_FINISHED) return al_error_raise(L, "InvalidStateError", "Result is not ready.");
  int top = lua_gettop(L);
  if (!ok) {
    al_push_job_error(L, cf->out.p, cf->out.len);
    return lua_error(L);
  }
  al_unmarshal(L, cf->out.p, cf->out.len);
  return lua_gettop(L) - top;
}

/* cf:_result(): the results (raises the error) of a done future. */
static int cf_result(lua_State *L) {
  al_CFut *cf = al_cf_check(L, 1);
  lua_settop(L, 1);
  return cf_push_outcome(L, cf);
}

/* cf:_exception(): the error of a done future, or nil. */
static int cf_exception(lua_State *L) {
  al_CFut *cf = al_cf_check(L, 1);
  pthread_mutex_lock(&cf->mu);
  int s = cf->state, ok = cf->ok;
  pthread_mutex_unlock(&cf->mu);
  if (s != AL_CF_FINISHED || ok) {
    if (s == AL_CF_CANCELLED) return al_error_raise(L, "CancelledError", "the future was cancelled");
    if (s != AL_CF_FINISHED) return al_error_raise(L, "InvalidStateError", "Exception is not set.");
    lua_pushnil(L);
    return 1;
  }
  al_push_job_error(L, cf->out.p, cf->out.len);
  return 1;
}

/*
** A loop future that follows a cf: completed on the loop's thread by a thread-safe call. The
** Wrap is malloc'd (the thread finishing cf reaches it) and registered as one of the loop's own
** resources through a small box, so a loop closed or collected while cf is pending detaches it:
** the future's registry ref is released on the loop's thread, and the finishing thread, seeing
** the Wrap detached, frees it without touching the loop (whose memory may be gone by then).
*/
enum { W_PENDING, W_POSTING, W_POSTED, W_DETACHED };

typedef struct Wrap {
  al_Loop *loop;
  int signal; /* only say "done": complete with no values, never with an error */
  int ref; /* the loop future, in the loop's registry */
  al_CFut *cf;
  atomic_int state;
  struct WrapBox *box; /* its resource entry while the loop has it */
} Wrap;

typedef struct WrapBox {
  al_Resource hdr;
  Wrap *w;
} WrapBox;

static int wrap_complete_p(lua_State *L) {
  Wrap *w = lua_touserdata(L, 1);
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->ref);
  al_Future *f = lua_touserdata(L, 1);
  if (f->state != AL_PENDING) return 0; /* cancelled by its awaiter */
  pthread_mutex_lock(&w->cf->mu);
  int s = w->cf->state, ok = w->cf->ok;
  pthread_mutex_unlock(&w->cf->mu);
  if (w->signal) {
    al_future_set_result(L, f, 1, 2, 0);
  } else if (s == AL_CF_CANCELLED) {
    al_future_cancel(L, f, 1, 0);
  } else if (!ok) {
    al_push_job_error(L, w->cf->out.p, w->cf->out.len);
    if (lua_istable(L, -1)) lua_getfield(L, -1, "traceback");
    else lua_pushnil(L);
    al_future_set_exception(L, f, 1, 2, lua_isnil(L, 3) ? 0 : 3);
  } else {
    int n = al_unmarshal(L, w->cf->out.p, w->cf->out.len);
    al_future_set_result(L, f, 1, 2, n);
  }
  return 0;
}

/* The loop no longer holds the future: its ref and resource entry go (on the loop's thread). */
static void wrap_release(lua_State *L, Wrap *w) {
  luaL_unref(L, LUA_REGISTRYINDEX, w->ref);
  w->ref = LUA_NOREF;
  al_resource_remove_internal(L, w->loop, w->box);
  w->box = NULL;
}

static void wrap_fire(lua_State *L, void *ud) {
  Wrap *w = ud;
  while (atomic_load(&w->state) == W_POSTING) sched_yield(); /* wrap_notify's last store */
  lua_pushcfunction(L, wrap_complete_p);
  lua_pushlightuserdata(L, w);
  int st = lua_pcall(L, 1, 0, 0);
  wrap_release(L, w);
  al_cf_unref(w->cf);
  free(w);
  if (st != LUA_OK) lua_error(L); /* reported by the thread-safe queue */
}

/* The posted call was dropped by the loop's release: wrap_shutdown already let go of the loop. */
static void wrap_drop(void *ud) {
  Wrap *w = ud;
  al_cf_unref(w->cf);
  free(w);
}

/* cf is done (any thread): post the completion, unless the loop detached the Wrap first. */
static void wrap_notify(al_CFut *cf, void *ud) {
  (void)cf;
  Wrap *w = ud;
  int expect = W_PENDING;
  if (!atomic_compare_exchange_strong(&w->state, &expect, W_POSTING)) {
    wrap_drop(w); /* W_DETACHED: the loop is gone */
    return;
  }
  /* Not closed yet: the loop's close waits for W_POSTING to end before releasing itself. */
  int failed = al_call_threadsafe(w->loop, wrap_fire, wrap_drop, w) != 0;
  atomic_store(&w->state, W_POSTED);
  if (failed) wrap_drop(w);
}

/* The loop closes (or is collected) with cf pending: detach the Wrap (loop/resource.c). */
static void wrap_shutdown(lua_State *L, void *obj) {
  Wrap *w = ((WrapBox *)obj)->w;
  int expect = W_PENDING;
  if (!atomic_compare_exchange_strong(&w->state, &expect, W_DETACHED)) {
    /* Being posted or posted: the loop's release drops the call (wrap_drop frees w). */
    while (atomic_load(&w->state) == W_POSTING) sched_yield();
  }
  wrap_release(L, w); /* W_DETACHED: wrap_notify frees w when cf finishes */
}

/*
** cf:_wrap(loop [, signal]) -> a loop future completed (on the loop's thread) when cf is done:
** with cf's results, error or cancellation, or with no values at all when `signal` is true.
*/
static int cf_wrap(lua_State *L) {
  al_CFut *cf = al_cf_check(L, 1);
  al_Loop *loop = al_checkloop(L, 2);
  if (loop->closed) return luaL_error(L, "aloop: Event loop is closed");
  int signal = lua_toboolean(L, 3);
  Wrap *w = malloc(sizeof *w);
  if (!w) return luaL_error(L, "aloop: out of memory");
  lua_settop(L, 2);
  al_future_new(L, loop, 2);
  lua_pushvalue(L, -1);
  w->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  w->loop = loop;
  w->signal = signal;
  w->cf = cf;
  atomic_init(&w->state, W_PENDING);
  w->box = lua_newuserdatauv(L, sizeof *w->box, 0);
  w->box->hdr.shutdown = wrap_shutdown;
  w->box->w = w;
  al_resource_add_internal(L, loop, -1);
  lua_pop(L, 1);
  al_cf_ref(cf);
  cf_on_done(cf, wrap_notify, w);
  return 1;
}

/* cf:_start() -> false when it was cancelled first (for whoever does the work). */
static int cf_start(lua_State *L) {
  lua_pushboolean(L, al_cf_start(al_cf_check(L, 1)));
  return 1;
}

/* cf:_set_result(...): finishes with these values (an error if one cannot cross). */
static int cf_set_result_p(lua_State *L) {
  al_Buf *out = lua_touserdata(L, lua_upvalueindex(1));
  al_Buf *b = al_marshal(L, 1, lua_gettop(L), 0, "aloop: a result of the coroutine");
  *out = *b;
  memset(b, 0, sizeof *b);
  return 0;
}

static int cf_set_result(lua_State *L) {
  al_CFut *cf = al_cf_check(L, 1);
  al_Buf out = {0};
  lua_pushlightuserdata(L, &out);
  lua_pushcclosure(L, cf_set_result_p, 1);
  lua_replace(L, 1);
  if (lua_pcall(L, lua_gettop(L) - 1, 0, 0) == LUA_OK) {
    al_cf_finish(cf, 1, &out);
  } else {
    al_buf_free(&out);
    al_error_to_bytes(L, -1, &out);
    al_cf_finish(cf, 0, &out);
  }
  return 0;
}

/* cf:_set_error(err) */
static int cf_set_error(lua_State *L) {
  al_CFut *cf = al_cf_check(L, 1);
  al_Buf out;
  al_error_to_bytes(L, 2, &out);
  al_cf_finish(cf, 0, &out);
  return 0;
}

/* cf:_set_cancelled(): cancelled even when running (its work was cancelled where it ran). */
static int cf_set_cancelled(lua_State *L) {
  al_CFut *cf = al_cf_check(L, 1);
  pthread_mutex_lock(&cf->mu);
  if (cf->state == AL_CF_PENDING || cf->state == AL_CF_RUNNING) {
    cf->state = AL_CF_CANCELLED;
    cf_done_locked(cf);
  } else {
    pthread_mutex_unlock(&cf->mu);
  }
  return 0;
}

/*
** A wait set (executor.as_completed outside tasks): registered once on each future, it queues
** them as they finish; the waiting thread takes them in that order. Reference-counted: every
** registration holds one until its future is done, the Lua object one until collected.
*/
typedef struct WaitSet {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refs;
  al_CFut **done; /* finished, in order; head..n not taken yet */
  int n, cap, head;
} WaitSet;

/* The wait set's userdata. */
typedef struct WaitSetBox {
  WaitSet *ws;
  uint32_t magic; /* WAITSET_MAGIC */
} WaitSetBox;

#define AL_WAITSET_MT "aloop.WaitSet"

static void ws_unref_locked(WaitSet *ws) {
  int left = --ws->refs;
  pthread_mutex_unlock(&ws->mu);
  if (left) return;
  pthread_mutex_destroy(&ws->mu);
  pthread_cond_destroy(&ws->cv);
  free(ws->done);
  free(ws);
}

static void ws_notify(al_CFut *cf, void *ud) {
  WaitSet *ws = ud;
  pthread_mutex_lock(&ws->mu);
  if (ws->n < ws->cap) ws->done[ws->n++] = cf; /* cap is the number of futures */
  pthread_cond_signal(&ws->cv);
  ws_unref_locked(ws);
}

/* core._cf_waitset({cf...}) -> a wait set over these futures */
static int l_cf_waitset(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, 1, i);
    al_cf_check(L, -1);
    lua_pop(L, 1);
  }
  WaitSetBox *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->ws = NULL;
  box->magic = WAITSET_MAGIC;
  luaL_setmetatable(L, AL_WAITSET_MT);
  WaitSet *ws = calloc(1, sizeof *ws);
  if (!ws || !(ws->done = calloc((size_t)n + 1, sizeof *ws->done))) {
    free(ws);
    return luaL_error(L, "aloop: out of memory");
  }
  pthread_mutex_init(&ws->mu, NULL);
  cond_init_monotonic(&ws->cv);
  ws->cap = (int)n;
  ws->refs = 1 + (int)n;
  box->ws = ws;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, 1, i);
    cf_on_done(al_cf_check(L, -1), ws_notify, ws);
    lua_pop(L, 1);
  }
  return 1;
}

/* ws:next(timeout or nil) -> the id (cf:_id()) of the next future to finish, or nil on timeout */
static int ws_next(lua_State *L) {
  WaitSet *ws = AL_CHECKUDATA(L, 1, WaitSetBox, WAITSET_MAGIC, AL_WAITSET_MT)->ws;
  double timeout = luaL_optnumber(L, 2, -1);
  struct timespec dl;
  if (timeout >= 0) deadline_after(timeout, &dl);
  pthread_mutex_lock(&ws->mu);
  while (ws->head == ws->n && ws->head < ws->cap) {
    if (timeout < 0) pthread_cond_wait(&ws->cv, &ws->mu);
    else if (pthread_cond_timedwait(&ws->cv, &ws->mu, &dl) == ETIMEDOUT) break;
  }
  al_CFut *cf = ws->head < ws->n ? ws->done[ws->head++] : NULL;
  pthread_mutex_unlock(&ws->mu);
  if (cf) lua_pushlightuserdata(L, cf);
  else lua_pushnil(L);
  return 1;
}

static int ws_gc(lua_State *L) {
  WaitSetBox *box = lua_touserdata(L, 1);
  if (box->ws) {
    pthread_mutex_lock(&box->ws->mu);
    ws_unref_locked(box->ws);
  }
  box->ws = NULL;
  return 0;
}

/* cf:_id() -> a light userdata naming the shared future (the same in every Lua state). */
static int cf_id(lua_State *L) {
  lua_pushlightuserdata(L, al_cf_check(L, 1));
  return 1;
}

static int cf_tostring(lua_State *L) {
  al_CFut *cf = al_cf_check(L, 1);
  static const char *const names[] = {"pending", "running", "finished", "cancelled"};
  lua_pushfstring(L, "<ConcurrentFuture %s %p>", names[cf_state(cf)], (void *)cf);
  return 1;
}

static int cf_eq(lua_State *L) {
  lua_pushboolean(L, al_cf_check(L, 1) == al_cf_check(L, 2));
  return 1;
}

static const luaL_Reg cf_methods[] = {
    {"done", cf_done},         {"cancelled", cf_cancelled}, {"running", cf_running},
    {"cancel", cf_cancel},     {"_wait", cf_wait},          {"_result", cf_result},
    {"_exception", cf_exception}, {"_wrap", cf_wrap},       {"_start", cf_start},
    {"_set_result", cf_set_result}, {"_set_error", cf_set_error},
    {"_set_cancelled", cf_set_cancelled}, {"_id", cf_id}, {NULL, NULL},
};

static const luaL_Reg cf_meta[] = {
    {"__gc", cf_gc},
    {"__tostring", cf_tostring},
    {"__eq", cf_eq},
    {NULL, NULL},
};

static const luaL_Reg ws_methods[] = {
    {"next", ws_next},
    {NULL, NULL},
};

static const luaL_Reg ws_meta[] = {
    {"__gc", ws_gc},
    {NULL, NULL},
};

void al_cfuture_open(lua_State *L, int core) {
  al_new_class(L, AL_CFUTURE_MT, cf_methods, cf_meta);
  lua_setfield(L, core, "ConcurrentFuture"); /* core.ConcurrentFuture = methods */
  lua_setfield(L, core, "_ConcurrentFuture_mt"); /* for the Lua modules' type checks */
  al_new_class(L, AL_WAITSET_MT, ws_methods, ws_meta);
  lua_pop(L, 2);
  lua_pushcfunction(L, l_cf_waitset);
  lua_setfield(L, core, "_cf_waitset");
}
