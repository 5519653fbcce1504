/*
** The C embedding API (include/aloop.h): loops around a host's own libev loop, running a loop
** or stepping it one iteration at a time from C, futures created and completed from C, and
** promises that complete a future from any OS thread. No entry longjmps into the host: work
** that may raise runs in a protected call and failures come back as status codes.
*/
#include <stdlib.h>

#include "core/internal.h"

/* ---------------------------------------------------------------------------------------- */
/* Checks. They read the stack only (no pushes) until the thread check has passed. */

/* The loop userdata at idx (size and magic checked, as al_checkloop does), or NULL. */
/* The loop of what looks like a plain Future at idx, or NULL (al_tofuture confirms later). */
static al_Loop *peek_future_loop(lua_State *L, int idx) {
  al_Future *f = al_tofuture(L, idx);
  return f && f->kind == AL_KIND_FUTURE ? f->loop : NULL;
}

/* The loop runs on another OS thread: the caller must not touch the Lua state at all. */
static int foreign(al_Loop *loop) {
  return loop && loop->running && !pthread_equal(loop->thread, pthread_self());
}

static int push_msg(lua_State *L, int code, const char *msg) {
  lua_pushstring(L, msg);
  return code;
}

static int error_object_p(lua_State *L) {
  al_error_push(L, lua_tostring(L, 1), lua_tostring(L, 2));
  return 1;
}

/* Pushes a new aloop error object of class cls (in a protected call) and returns code. */
static int push_error_object(lua_State *L, int code, const char *cls, const char *msg) {
  lua_pushcfunction(L, error_object_p);
  lua_pushstring(L, cls);
  lua_pushstring(L, msg);
  lua_pcall(L, 2, 1, 0); /* on failure the memory error is the error pushed */
  return code;
}

/* ---------------------------------------------------------------------------------------- */
/* Loops */

static int new_loop_p(lua_State *L) {
  struct ev_loop *ev = lua_touserdata(L, 1);
  if (!ev) { /* as aio.new_event_loop(): ALOOP_BACKEND picks the backend */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "aloop.core");
    lua_getfield(L, -1, "new_event_loop");
    lua_call(L, 0, 1);
    return 1;
  }
  al_Loop *loop = al_loop_new(L, ev, 0, NULL);
  /* aloop's watchers on the host's loop fire while the host runs ev_run itself: they need a
     Lua state outside aloop_run/aloop_step too (the main thread; run_* restore it). */
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  loop->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  return 1;
}

aloop_loop *aloop_new_loop(lua_State *L, struct ev_loop *ev) {
  if (!al_state(L)) {
    push_msg(L, ALOOP_ERROR, "aloop: open the module first (luaopen_aloop)");
    return NULL;
  }
  lua_pushcfunction(L, new_loop_p);
  lua_pushlightuserdata(L, ev);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) return NULL;
  return al_toloop(L, -1);
}

/* Pushes an error and returns its code when the loop at idx cannot be used (or 0). */
static int check_loop(lua_State *L, al_Loop *loop, const char *fname) {
  if (!loop) {
    lua_pushfstring(L, "%s: an aloop loop expected", fname);
    return ALOOP_ERROR;
  }
  if (loop->closed) return push_msg(L, ALOOP_ECLOSED, "aloop: Event loop is closed");
  return 0;
}

/* Protected: loop:<name>(args) with the name at 1, the loop at 2; returns its results. */
static int method_p(lua_State *L) {
  lua_getfield(L, 2, lua_tostring(L, 1));
  lua_replace(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* loop:<name>(arg) (arg_idx 0: no argument); number of results pushed, or ALOOP_ERROR. */
static int call_method(lua_State *L, int loop_idx, const char *name, int arg_idx) {
  int base = lua_gettop(L);
  lua_pushcfunction(L, al_msgh);
  lua_pushcfunction(L, method_p);
  lua_pushstring(L, name);
  lua_pushvalue(L, loop_idx);
  if (arg_idx) lua_pushvalue(L, arg_idx);
  int status = lua_pcall(L, arg_idx ? 3 : 2, LUA_MULTRET, base + 1);
  lua_remove(L, base + 1);
  return status == LUA_OK ? lua_gettop(L) - base : ALOOP_ERROR;
}

int aloop_run(lua_State *L, int loop_idx) {
  loop_idx = lua_absindex(L, loop_idx);
  al_Loop *loop = al_toloop(L, loop_idx);
  if (foreign(loop)) return ALOOP_ETHREAD;
  int code = check_loop(L, loop, "aloop_run");
  if (code) return code;
  code = call_method(L, loop_idx, "run_forever", 0);
  return code < 0 ? code : ALOOP_OK;
}

int aloop_run_until_complete(lua_State *L, int loop_idx, int aw_idx) {
  loop_idx = lua_absindex(L, loop_idx);
  aw_idx = lua_absindex(L, aw_idx);
  al_Loop *loop = al_toloop(L, loop_idx);
  if (foreign(loop)) return ALOOP_ETHREAD;
  int code = check_loop(L, loop, "aloop_run_until_complete");
  if (code) return code;
  return call_method(L, loop_idx, "run_until_complete", aw_idx);
}

int aloop_close(lua_State *L, int loop_idx) {
  loop_idx = lua_absindex(L, loop_idx);
  al_Loop *loop = al_toloop(L, loop_idx);
  if (foreign(loop)) return ALOOP_ETHREAD;
  if (!loop) return check_loop(L, loop, "aloop_close");
  int code = call_method(L, loop_idx, "close", 0);
  return code < 0 ? code : ALOOP_OK;
}

static int step_p(lua_State *L) {
  al_Loop *loop = lua_touserdata(L, 1);
  int mode = (int)lua_tointeger(L, 2);
  lua_settop(L, 0);
  if (mode == ALOOP_STEP_NOPOLL) al_ts_drain(L, loop); /* nobody else polled our wake-up */
  if (!loop->interrupted) al_loop_run_once(L, loop, mode);
  return 0;
}

/*
** One iteration with run_forever's bookkeeping around it (running flags, the state that runs
** the loop, its thread) but without the SIGINT handler: a host stepping aloop from its own main
** loop keeps control of its signals.
*/
int aloop_step(lua_State *L, int loop_idx, int mode) {
  al_Loop *loop = al_toloop(L, loop_idx);
  if (foreign(loop)) return ALOOP_ETHREAD;
  int code = check_loop(L, loop, "aloop_step");
  if (code) return code;
  if (mode != ALOOP_STEP_WAIT && mode != ALOOP_STEP_NOWAIT && mode != ALOOP_STEP_NOPOLL)
    return push_msg(L, ALOOP_ERROR, "aloop_step: unknown mode");
  al_State *st = loop->st;
  if (loop->running) return push_msg(L, ALOOP_ERROR, "aloop: This event loop is already running");
  if (st->running)
    return push_msg(L, ALOOP_ERROR,
                    "aloop: Cannot run the event loop while another loop is running");
  lua_State *prev_L = loop->L;
  loop->running = 1;
  loop->thread = pthread_self();
  loop->L = loop->cur_L = L;
  al_set_running(L, st, loop);
  lua_pushcfunction(L, step_p);
  lua_pushlightuserdata(L, loop);
  lua_pushinteger(L, mode);
  int status = lua_pcall(L, 2, 0, 0);
  loop->running = 0;
  loop->L = prev_L;
  loop->cur_L = NULL;
  al_set_running(L, st, NULL);
  if (status != LUA_OK) return ALOOP_ERROR;
  if (loop->interrupted) {
    loop->interrupted = 0;
    loop->stopping = 0;
    return push_error_object(L, ALOOP_ERROR, "KeyboardInterrupt", NULL);
  }
  if (loop->stopping) {
    loop->stopping = 0;
    return ALOOP_STOPPED;
  }
  return ALOOP_OK;
}

double aloop_next_timeout(lua_State *L, int loop_idx) {
  al_Loop *loop = al_toloop(L, loop_idx);
  if (!loop || loop->closed || foreign(loop)) return -1;
  if (loop->ready_tail > loop->ready_head || loop->stopping || loop->interrupted) return 0;
  if (loop->heap_n == 0) return -1;
  double next = al_timer_next(L, loop); /* drops cancelled timers at the top of the heap */
  if (next < 0) return -1;
  double d = next - al_now();
  return d > 0 ? d : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Futures */

static int future_new_p(lua_State *L) {
  al_future_new(L, lua_touserdata(L, 1), 1);
  return 1;
}

int aloop_future_new(lua_State *L, int loop_idx) {
  al_Loop *loop = al_toloop(L, loop_idx);
  if (foreign(loop)) return ALOOP_ETHREAD;
  int code = check_loop(L, loop, "aloop_future_new");
  if (code) return code;
  loop_idx = lua_absindex(L, loop_idx);
  lua_pushcfunction(L, future_new_p);
  lua_pushvalue(L, loop_idx);
  return lua_pcall(L, 1, 1, 0) == LUA_OK ? ALOOP_OK : ALOOP_ERROR;
}

/* Pushes an error and returns its code unless the plain Future at idx can be completed. */
static int check_pending(lua_State *L, int idx, const char *fname, al_Future **fp) {
  al_Future *f = al_tofuture(L, idx);
  if (!f || f->kind != AL_KIND_FUTURE) {
    lua_pushfstring(L, "%s: an aloop Future expected (not a Task)", fname);
    return ALOOP_ERROR;
  }
  if (f->loop->closed) return push_msg(L, ALOOP_ECLOSED, "aloop: Event loop is closed");
  if (f->state != AL_PENDING)
    return push_error_object(L, ALOOP_ESTATE, "InvalidStateError",
                             f->state == AL_CANCELLED ? "invalid state: cancelled"
                                                      : "invalid state: finished");
  *fp = f;
  return 0;
}

static int set_result_p(lua_State *L) {
  al_future_set_result(L, lua_touserdata(L, 1), 1, 2, lua_gettop(L) - 1);
  return 0;
}

static int set_exception_p(lua_State *L) {
  int tb = 0;
  if (lua_istable(L, 2) && lua_getfield(L, 2, "traceback") == LUA_TSTRING) tb = 3;
  al_future_set_exception(L, lua_touserdata(L, 1), 1, 2, tb);
  return 0;
}

/* Completes the future at fut_idx with the n values on top, through fn (protected). */
static int complete(lua_State *L, int fut_idx, int n, lua_CFunction fn, const char *fname) {
  fut_idx = lua_absindex(L, fut_idx);
  if (foreign(peek_future_loop(L, fut_idx))) return ALOOP_ETHREAD;
  if (n < 0 || n > lua_gettop(L)) return push_msg(L, ALOOP_ERROR, "aloop: bad number of values");
  al_Future *f;
  int code = check_pending(L, fut_idx, fname, &f);
  if (code) {
    lua_insert(L, -(n + 1)); /* the error replaces the values */
    lua_pop(L, n);
    return code;
  }
  lua_pushcfunction(L, fn);
  lua_insert(L, -(n + 1));
  lua_pushvalue(L, fut_idx);
  lua_insert(L, -(n + 1));
  return lua_pcall(L, n + 1, 0, 0) == LUA_OK ? ALOOP_OK : ALOOP_ERROR;
}

int aloop_future_set_result(lua_State *L, int fut_idx, int nresults) {
  return complete(L, fut_idx, nresults, set_result_p, "aloop_future_set_result");
}

int aloop_future_set_exception(lua_State *L, int fut_idx) {
  return complete(L, fut_idx, 1, set_exception_p, "aloop_future_set_exception");
}

/* ---------------------------------------------------------------------------------------- */
/* Promises */

enum { PROMISE_RESOLVE, PROMISE_REJECT, PROMISE_CANCEL };

struct aloop_promise {
  al_Loop *loop;
  int ref; /* registry ref of the future (it keeps its loop alive): released on the loop thread */
  int how; /* PROMISE_* */
  aloop_pushfn push;
  void *ud;
};

aloop_promise *aloop_promise_new(lua_State *L, int fut_idx) {
  fut_idx = lua_absindex(L, fut_idx);
  if (foreign(peek_future_loop(L, fut_idx))) return NULL;
  al_Future *f;
  if (check_pending(L, fut_idx, "aloop_promise_new", &f)) return NULL;
  aloop_promise *p = malloc(sizeof *p);
  if (!p) {
    push_msg(L, ALOOP_ERROR, "aloop_promise_new: out of memory");
    return NULL;
  }
  p->loop = f->loop;
  lua_pushvalue(L, fut_idx);
  p->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return p;
}

/* Protected: push(L, ud); returns exactly the values it says it pushed. */
static int push_p(lua_State *L) {
  aloop_promise *p = lua_touserdata(L, 1);
  lua_settop(L, 0);
  int n = p->push(L, p->ud);
  if (n < 0 || n > lua_gettop(L)) return luaL_error(L, "aloop_promise: push returned %d", n);
  return n;
}

/* On the loop thread (a thread-safe call): release the ref, then complete the future. */
static void promise_run(lua_State *L, void *ud) {
  aloop_promise p = *(aloop_promise *)ud;
  free(ud);
  lua_rawgeti(L, LUA_REGISTRYINDEX, p.ref);
  luaL_unref(L, LUA_REGISTRYINDEX, p.ref);
  int fidx = lua_gettop(L);
  al_Future *f = lua_touserdata(L, fidx);
  if (p.how == PROMISE_CANCEL) {
    al_future_cancel(L, f, fidx, 0);
    return;
  }
  int ok = 1, n = 0;
  if (p.push) {
    lua_pushcfunction(L, al_msgh);
    lua_pushcfunction(L, push_p);
    lua_pushlightuserdata(L, &p);
    ok = lua_pcall(L, 1, LUA_MULTRET, fidx + 1) == LUA_OK;
    lua_remove(L, fidx + 1);
    n = lua_gettop(L) - fidx;
  }
  if (f->state == AL_CANCELLED) return; /* whoever awaited it gave up */
  if (f->state != AL_PENDING) {
    al_error_raise(L, "InvalidStateError",
                   "aloop_promise: the future was already finished (invalid state: finished)");
    return;
  }
  if (!ok) {
    al_push_lasttb(L);
    al_future_set_exception(L, f, fidx, -2, lua_gettop(L));
  } else if (p.how == PROMISE_REJECT) {
    if (n == 0) lua_pushliteral(L, "aloop_promise_reject: no error value pushed");
    al_future_set_exception(L, f, fidx, -1, 0);
  } else {
    al_future_set_result(L, f, fidx, fidx + 1, n);
  }
}

static void promise_drop(void *ud) { free(ud); }

static int promise_post(aloop_promise *p, int how, aloop_pushfn push, void *ud) {
  p->how = how;
  p->push = push;
  p->ud = ud;
  if (al_call_threadsafe(p->loop, promise_run, promise_drop, p) != 0) {
    free(p);
    return ALOOP_ECLOSED;
  }
  return ALOOP_OK;
}

int aloop_promise_resolve(aloop_promise *p, aloop_pushfn push, void *ud) {
  return promise_post(p, PROMISE_RESOLVE, push, ud);
}

int aloop_promise_reject(aloop_promise *p, aloop_pushfn push, void *ud) {
  return promise_post(p, PROMISE_REJECT, push, ud);
}

int aloop_promise_cancel(aloop_promise *p) { return promise_post(p, PROMISE_CANCEL, NULL, NULL); }

/* ---------------------------------------------------------------------------------------- */
/* For test helpers (aloop.busted): what is still scheduled on a loop. */

/* core._loop_pending(loop) -> ready callbacks, live timers (sleeping tasks included), fd watchers */
int al_l_loop_pending(lua_State *L) {
  al_Loop *loop = al_checkloop(L, 1);
  long timers = 0;
  for (long i = 0; i < loop->heap_n; i++) {
    const al_HeapEntry *e = &loop->heap[i];
    timers += e->task ? e->task->sleep_seq == e->seq : !e->h->cancelled;
  }
  lua_pushinteger(L, loop->ready_tail - loop->ready_head);
  lua_pushinteger(L, timers);
  lua_pushinteger(L, loop->nwatchers);
  return 3;
}
