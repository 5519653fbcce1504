/*
** The event loop: one libev loop, a FIFO ready queue of handles and task steps, a timer heap
** (handle.c) and the iteration that ties them together (al_loop_run_once, asyncio's _run_once),
** and the loop's Lua methods. Every call into Lua is protected: nothing longjmps through ev_run.
** The exception handler is in exception.c.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"

const char al_key_state = 0;
static const char key_loops = 0;  /* weak table: light userdata al_Loop* -> loop userdata */

#define READY_MIN 64

double al_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

al_State *al_state(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &al_key_state);
  al_State *st = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return st;
}

void al_setmt(lua_State *L, al_State *st, int which) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, st->mt_ref[which]);
  lua_setmetatable(L, -2);
}

void al_cachemt(lua_State *L, int idx, int which) {
  lua_pushvalue(L, idx);
  al_state(L)->mt_ref[which] = luaL_ref(L, LUA_REGISTRYINDEX);
}

void al_new_class(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *meta) {
  luaL_newmetatable(L, name);
  if (meta) luaL_setfuncs(L, meta, 0);
  lua_newtable(L);
  if (methods) luaL_setfuncs(L, methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");
}

/* Size and magic number (al_toudata): also safe from a host thread peeking at the stack. */
al_Loop *al_toloop(lua_State *L, int idx) { return AL_TOUDATA(L, idx, al_Loop, AL_LOOP_MAGIC); }

al_Loop *al_checkloop(lua_State *L, int idx) {
  return AL_CHECKUDATA(L, idx, al_Loop, AL_LOOP_MAGIC, "aloop loop");
}

static al_Loop *checkopen(lua_State *L, int idx) {
  al_Loop *loop = al_checkloop(L, idx);
  if (loop->closed) luaL_error(L, "aloop: Event loop is closed");
  return loop;
}

void al_push_loop(lua_State *L, al_Loop *loop) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &key_loops);
  lua_rawgetp(L, -1, loop);
  lua_remove(L, -2);
}

/* The running loop changes (NULL: none). Its userdata is cached on first use, dropped here. */
void al_set_running(lua_State *L, al_State *st, al_Loop *loop) {
  st->running = loop;
  lua_pushboolean(L, 0);
  lua_rawseti(L, LUA_REGISTRYINDEX, st->running_ref);
}

/* Pushes the running loop's userdata: an array slot of the registry, not two hash lookups. */
void al_push_running(lua_State *L, al_State *st) {
  if (lua_rawgeti(L, LUA_REGISTRYINDEX, st->running_ref) == LUA_TUSERDATA) return;
  lua_pop(L, 1);
  al_push_loop(L, st->running);
  lua_pushvalue(L, -1);
  lua_rawseti(L, LUA_REGISTRYINDEX, st->running_ref);
}

/* ---------------------------------------------------------------------------------------- */
/* Ready queue: a ring buffer in a Lua table (array part only), head/tail counted in C. */


/*
** The ring is full: doubles it in place. The entries in the slots before the head's move up past
** the old end, so the ring stays contiguous and the table stays the same one (run_batch holds it).
*/
static void ready_grow(lua_State *L, al_Loop *loop) {
  long cap = loop->ready_cap, head = loop->ready_head & (cap - 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, loop->ready_ref);
  for (long i = 1; i <= head; i++) {
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, -2, cap + i);
    lua_pushnil(L);
    lua_rawseti(L, -2, i);
  }
  lua_pop(L, 1);
  loop->ready_head = head;
  loop->ready_tail = head + cap;
  loop->ready_cap = cap * 2;
}

/* Queues the value on top (popping it); on a closed loop it is dropped: nothing runs there. */
void al_ready_push(lua_State *L, al_Loop *loop) {
  if (loop->closed) {
    lua_pop(L, 1);
    return;
  }
  if (loop->ready_tail - loop->ready_head == loop->ready_cap) ready_grow(L, loop);
  lua_rawgeti(L, LUA_REGISTRYINDEX, loop->ready_ref);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, (loop->ready_tail & (loop->ready_cap - 1)) + 1);
  loop->ready_tail++;
  lua_pop(L, 2);
}

static inline long ready_count(al_Loop *loop) { return loop->ready_tail - loop->ready_head; }

/* ---------------------------------------------------------------------------------------- */
/* The iteration. */

static void wake_cb(struct ev_loop *ev, ev_timer *w, int revents) {
  (void)ev, (void)w, (void)revents;
}

/* Pushes the entry at the head of the ring (at index `ring`); it stays queued until ready_drop. */
static inline void *ready_peek(lua_State *L, al_Loop *loop, int ring) {
  lua_rawgeti(L, ring, (loop->ready_head & (loop->ready_cap - 1)) + 1);
  return lua_touserdata(L, -1);
}

/* Drops the head entry (the ring may have grown since ready_peek: the slot is computed again). */
static inline void ready_drop(lua_State *L, al_Loop *loop, int ring) {
  lua_pushnil(L);
  lua_rawseti(L, ring, (loop->ready_head & (loop->ready_cap - 1)) + 1);
  loop->ready_head++;
}

/* Runs the entry at index 3 (a task step or a handle's call); run_batch's stack: loop, ring. */
static inline void run_entry(lua_State *L, al_Loop *loop, unsigned char *kind) {
  if (*kind == AL_KIND_TASK) {
    al_task_run(L, (al_Task *)kind, 3);
  } else {
    al_Handle *h = (al_Handle *)kind;
    if (!h->cancelled) {
      luaL_checkstack(L, h->nargs + 1, "too many arguments for a callback");
      for (int i = 0; i <= h->nargs; i++) lua_getiuservalue(L, 3, i + 1);
      lua_call(L, h->nargs, 0);
    }
  }
}

/* Debug mode: run_entry, and log it when it took longer than loop.slow_callback_duration. */
static void run_entry_timed(lua_State *L, al_Loop *loop, unsigned char *kind) {
  double t0 = al_now();
  run_entry(L, loop, kind);
  double dt = al_now() - t0;
  if (dt < loop->slow_callback_duration) return;
  lua_settop(L, 3);
  if (*kind == AL_KIND_HANDLE) lua_getiuservalue(L, 3, 1); /* the function that ran */
  else lua_pushvalue(L, 3);                                /* the task that stepped */
  al_push_description(L, -1);
  char secs[32];
  snprintf(secs, sizeof secs, "%.3f", dt);
  al_log(L, AL_LOG_WARNING, "Executing %s %s took %s seconds",
         *kind == AL_KIND_TASK ? "a step of" : "callback", lua_tostring(L, -1), secs);
}

/*
** Runs loop->batch_left ready entries under the caller's single protected call (no setjmp per
** callback). Each entry leaves the queue only after it ran, so when a callback raises, the
** caller still finds its handle at the head for the report.
*/
static int run_batch(lua_State *L) {
  al_Loop *loop = lua_touserdata(L, 1);
  lua_settop(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, loop->ready_ref); /* 2: the ring (never replaced) */
  while (loop->batch_left > 0 && !loop->interrupted) {
    unsigned char *kind = ready_peek(L, loop, 2);
    if (loop->debug) run_entry_timed(L, loop, kind);
    else run_entry(L, loop, kind);
    lua_settop(L, 2);
    loop->batch_left--;
    ready_drop(L, loop, 2);
  }
  return 0;
}

/* A callback raised (error on top, its handle at the head of the queue): report, drop it. */
static void report_callback_error(lua_State *L, al_Loop *loop) {
  int err = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, loop->ready_ref);
  int ring = err + 1;
  if (al_error_is(L, err, "KeyboardInterrupt")) {
    loop->interrupted = 1;
  } else {
    ready_peek(L, loop, ring);
    int h = lua_gettop(L);
    lua_getiuservalue(L, h, 1);
    al_push_description(L, -1); /* protected: a failing __tostring must not escape */
    lua_pushfstring(L, "Exception in callback %s", lua_tostring(L, -1));
    lua_replace(L, -3);
    lua_pop(L, 1);
    al_push_error_context(L, err);
    lua_pushvalue(L, h);
    lua_setfield(L, -2, "handle");
    al_report(L, loop, -1);
  }
  lua_settop(L, ring);
  loop->batch_left--;
  ready_drop(L, loop, ring);
  lua_settop(L, err - 1);
}

/*
** One iteration, as asyncio's _run_once: poll I/O (without blocking when callbacks are ready,
** otherwise until the earliest timer), move due timers to the ready queue, then run exactly the
** entries that were ready at that point; what they schedule runs in the next iteration.
** `mode` (aloop.h): ALOOP_STEP_WAIT blocks as described, ALOOP_STEP_NOWAIT never blocks, and
** ALOOP_STEP_NOPOLL does not poll at all (a host's own ev_run polls a shared libev loop).
*/
void al_loop_run_once(lua_State *L, al_Loop *loop, int mode) {
  double next = loop->heap_n > 0 ? al_timer_next(L, loop) : -1;
  if (mode == ALOOP_STEP_NOPOLL) {
    /* the host polled */
  } else if (ready_count(loop) > 0 || loop->stopping || mode == ALOOP_STEP_NOWAIT) {
    /* Callbacks are waiting: poll without blocking. With no fd watchers there is nothing to
       poll but the wake-up watcher, so skip the syscall unless a wake-up is pending (a host's
       libev loop is always polled: its own watchers are there). */
    if (loop->nwatchers > 0 || !loop->own_ev || ev_async_pending(&loop->async))
      ev_run(loop->ev, EVRUN_NOWAIT);
  } else if (next >= 0) {
    double delay = next - al_now();
    if (delay <= 0) {
      ev_run(loop->ev, EVRUN_NOWAIT);
    } else {
      ev_timer_set(&loop->wake, delay, 0.);
      ev_timer_start(loop->ev, &loop->wake);
      ev_run(loop->ev, EVRUN_ONCE);
      ev_timer_stop(loop->ev, &loop->wake);
    }
  } else {
    ev_run(loop->ev, EVRUN_ONCE);
  }
  if (loop->interrupted) return;
  if (loop->heap_n > 0) al_timers_collect(L, loop, al_now());
  loop->batch_left = ready_count(loop);
  int base = lua_gettop(L);
  while (loop->batch_left > 0 && !loop->interrupted) {
    lua_pushcfunction(L, al_msgh);
    lua_pushcfunction(L, run_batch);
    lua_pushlightuserdata(L, loop);
    if (lua_pcall(L, 1, 0, base + 1) != LUA_OK) report_callback_error(L, loop);
    lua_settop(L, base);
  }
}

/* Raises aio.KeyboardInterrupt (SIGINT arrived while the loop ran). */
static int raise_interrupt(lua_State *L) {
  al_error_push(L, "KeyboardInterrupt", NULL);
  return lua_error(L);
}

static int loop_run_forever(lua_State *L) {
  al_Loop *loop = checkopen(L, 1);
  al_State *st = loop->st;
  if (loop->running) return luaL_error(L, "aloop: This event loop is already running");
  if (st->running)
    return luaL_error(L, "aloop: Cannot run the event loop while another loop is running");
  lua_State *prev_L = loop->L;
  loop->running = 1;
  loop->thread = pthread_self();
  loop->L = loop->cur_L = L;
  al_set_running(L, st, loop);
  al_sigint_install(loop);
  lua_settop(L, 1);
  while (!loop->interrupted) {
    al_loop_run_once(L, loop, ALOOP_STEP_WAIT);
    if (loop->stopping) break;
  }
  al_sigint_restore(loop);
  loop->stopping = 0;
  loop->running = 0;
  loop->L = prev_L;
  loop->cur_L = NULL;
  al_set_running(L, st, NULL);
  if (loop->interrupted) {
    loop->interrupted = 0;
    return raise_interrupt(L);
  }
  return 0;
}

static int loop_stop(lua_State *L) {
  al_Loop *loop = al_checkloop(L, 1);
  loop->stopping = 1;
  return 0;
}

static int loop_is_running(lua_State *L) {
  lua_pushboolean(L, al_checkloop(L, 1)->running);
  return 1;
}

static int loop_is_closed(lua_State *L) {
  lua_pushboolean(L, al_checkloop(L, 1)->closed);
  return 1;
}

static int loop_time(lua_State *L) {
  (void)al_checkloop(L, 1);
  lua_pushnumber(L, al_now());
  return 1;
}

static const struct {
  const char *name;
  unsigned int flag;
} backends[] = {
    {"select", EVBACKEND_SELECT}, {"poll", EVBACKEND_POLL},       {"epoll", EVBACKEND_EPOLL},
    {"kqueue", EVBACKEND_KQUEUE}, {"devpoll", EVBACKEND_DEVPOLL}, {"port", EVBACKEND_PORT},
    {"linuxaio", EVBACKEND_LINUXAIO}, {"io_uring", EVBACKEND_IOURING},
    {NULL, 0},
};

static int loop_backend(lua_State *L) {
  al_Loop *loop = checkopen(L, 1);
  unsigned int b = ev_backend(loop->ev);
  for (int i = 0; backends[i].name; i++) {
    if (backends[i].flag == b) {
      lua_pushstring(L, backends[i].name);
      return 1;
    }
  }
  lua_pushinteger(L, b);
  return 1;
}

/* A callback must be callable (a function, or a value whose metatable has __call): checked at
   the call, not found out later in the exception handler. */
static void check_callable(lua_State *L, int idx) {
  if (lua_isfunction(L, idx)) return;
  if (luaL_getmetafield(L, idx, "__call") != LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  luaL_typeerror(L, idx, "function");
}

/* loop:call_soon(fn, ...) -> Handle */
static int loop_call_soon(lua_State *L) {
  al_Loop *loop = checkopen(L, 1);
  check_callable(L, 2);
  if (loop->debug) al_debug_check_thread(L, loop);
  al_handle_new(L, loop, 2, lua_gettop(L) - 2, 0);
  lua_pushvalue(L, -1);
  al_ready_push(L, loop);
  return 1;
}

/*
** loop:call_soon_threadsafe(fn, ...): the Lua state itself is single-threaded, so from Lua this
** is call_soon plus a wake-up of the loop (host threads use aloop_call_threadsafe).
*/
static int loop_call_soon_threadsafe(lua_State *L) {
  int n = loop_call_soon(L);
  al_Loop *loop = lua_touserdata(L, 1); /* checked by loop_call_soon */
  ev_async_send(loop->ev, &loop->async);
  return n;
}

static int schedule_timer(lua_State *L, al_Loop *loop, double when, int fnidx) {
  al_debug_check_thread(L, loop);
  al_Handle *h = al_handle_new(L, loop, fnidx, lua_gettop(L) - fnidx, 1);
  h->when = when;
  al_timer_schedule(L, loop, h, lua_gettop(L));
  return 1;
}

/* loop:call_later(delay, fn, ...) -> TimerHandle; a negative delay is a time in the past (due
   now, before later-due timers, and when() says so), as asyncio. */
static int loop_call_later(lua_State *L) {
  al_Loop *loop = checkopen(L, 1);
  double delay = luaL_checknumber(L, 2);
  check_callable(L, 3);
  if (isnan(delay)) return luaL_argerror(L, 2, "delay is NaN");
  return schedule_timer(L, loop, al_now() + delay, 3);
}

/* loop:call_at(when, fn, ...) -> TimerHandle; `when` is on the loop:time() clock. */
static int loop_call_at(lua_State *L) {
  al_Loop *loop = checkopen(L, 1);
  double when = luaL_checknumber(L, 2);
  check_callable(L, 3);
  if (isnan(when)) return luaL_argerror(L, 2, "when is NaN");
  return schedule_timer(L, loop, when, 3);
}

static int loop_create_future(lua_State *L) {
  al_Loop *loop = checkopen(L, 1);
  al_future_new(L, loop, 1);
  return 1;
}

static int loop_set_debug(lua_State *L) {
  al_checkloop(L, 1)->debug = lua_toboolean(L, 2);
  return 0;
}

static int loop_get_debug(lua_State *L) {
  lua_pushboolean(L, al_checkloop(L, 1)->debug);
  return 1;
}

/* Releases everything libev and the registry hold for this loop (close and __gc). */
static void loop_release(lua_State *L, al_Loop *loop) {
  if (loop->ev) {
    ev_timer_stop(loop->ev, &loop->wake);
    ev_async_stop(loop->ev, &loop->async);
    al_ts_close(loop);
    if (loop->own_ev) ev_loop_destroy(loop->ev);
    loop->ev = NULL;
  }
  /* A TimerHandle outliving the loop must not reach it through its raw pointer any more. */
  for (long i = 0; i < loop->heap_n; i++)
    if (loop->heap[i].h) loop->heap[i].h->in_heap = 0;
  free(loop->heap);
  loop->heap = NULL;
  loop->heap_n = loop->heap_cap = 0;
  al_anchors_free(L, &loop->timers);
  al_anchors_free(L, &loop->tasks);
  loop->heap_cancelled = 0;
  int *refs[] = {&loop->ready_ref, &loop->handler_ref};
  for (size_t i = 0; i < sizeof refs / sizeof *refs; i++) {
    luaL_unref(L, LUA_REGISTRYINDEX, *refs[i]);
    *refs[i] = LUA_NOREF;
  }
  loop->ready_head = loop->ready_tail = 0;
}

/*
** loop:close(): reports tasks that are still pending ("Task was destroyed but it is pending!"),
** drops every queued callback and timer and frees the libev loop. Idempotent.
*/
static int loop_close(lua_State *L) {
  al_Loop *loop = al_checkloop(L, 1);
  if (loop->running) return luaL_error(L, "aloop: Cannot close a running event loop");
  if (loop->closed || loop->closing) return 0;
  loop->closing = 1;
  /* Report tasks that never finished; they are abandoned with the loop. */
  lua_rawgeti(L, LUA_REGISTRYINDEX, loop->tasks.ref);
  int tasks = lua_gettop(L);
  for (int i = 1; i <= loop->tasks.top; i++) {
    if (lua_rawgeti(L, tasks, i) == LUA_TNIL) {
      lua_pop(L, 1);
      continue;
    }
    lua_createtable(L, 0, 5);
    lua_pushliteral(L, "Task was destroyed but it is pending!");
    lua_setfield(L, -2, "message");
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "task");
    al_task_push_stack_text(L, -2);
    lua_setfield(L, -2, "stack");
    if (al_debug_push_creation(L, -2)) lua_setfield(L, -2, "source_traceback");
    al_report(L, loop, -1);
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  /* Failed tasks nobody references any more report "exception was never retrieved" now. */
  lua_gc(L, LUA_GCCOLLECT);
  loop->closed = 1;
  al_resources_close(L, loop, 1); /* transports, listeners, processes, watchers, DNS pool */
  al_State *st = loop->st;
  if (st->default_loop_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, st->default_loop_ref);
    if (lua_touserdata(L, -1) == loop) {
      luaL_unref(L, LUA_REGISTRYINDEX, st->default_loop_ref);
      st->default_loop_ref = LUA_NOREF;
    }
    lua_pop(L, 1);
  }
  loop_release(L, loop);
  return 0;
}

static int loop_gc(lua_State *L) {
  al_Loop *loop = lua_touserdata(L, 1);
  if (!loop->closed && loop->debug) { /* a resource warning, as asyncio's in debug mode */
    lua_pushfstring(L, "unclosed event loop %p (close it with loop:close() or aio.run)",
                    (void *)loop);
    if (al_debug_push_creation(L, 1)) {
      lua_pushfstring(L, "%s\nObject created at:\n%s",
                      lua_tostring(L, -2), lua_tostring(L, -1));
      lua_replace(L, -3);
      lua_pop(L, 1);
    }
    al_log_pushed(L, AL_LOG_WARNING);
  }
  if (!loop->closed) {
    loop->closed = 1;
    /* Its own resources go first: a DNS worker finishing later must not post to a freed loop.
       Their shutdown finds the loop through key_loops, whose weak entry the collector cleared:
       it is there again meanwhile. */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_loops);
    lua_pushvalue(L, 1);
    lua_rawsetp(L, -2, loop);
    al_resources_close_own(L, loop, 1);
    lua_pushnil(L);
    lua_rawsetp(L, -2, loop);
    lua_pop(L, 1);
    loop_release(L, loop);
  }
  pthread_mutex_destroy(&loop->ts_mu);
  return 0;
}

static int loop_tostring(lua_State *L) {
  al_Loop *loop = al_checkloop(L, 1);
  lua_pushfstring(L, "<aloop.Loop %s%s %p>", loop->running ? "running" : "idle",
                  loop->closed ? " closed" : "", (void *)loop);
  return 1;
}

/* Field access: methods first, then the per-loop attribute table (slow_callback_duration …). */
static int loop_index(lua_State *L) {
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL) return 1;
  const char *k = lua_tostring(L, 2);
  al_Loop *loop = lua_touserdata(L, 1);
  if (k && strcmp(k, "slow_callback_duration") == 0) {
    lua_pushnumber(L, loop->slow_callback_duration);
    return 1;
  }
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

static int loop_newindex(lua_State *L) {
  const char *k = lua_tostring(L, 2);
  al_Loop *loop = lua_touserdata(L, 1);
  if (k && strcmp(k, "slow_callback_duration") == 0) {
    loop->slow_callback_duration = luaL_checknumber(L, 3);
    return 0;
  }
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_rawset(L, -3);
  return 0;
}

/* new_event_loop([opts]): opts.backend picks the libev backend; env ALOOP_BACKEND the default. */
static int l_new_event_loop(lua_State *L) {
  const char *bname = NULL;
  if (lua_istable(L, 1) && lua_getfield(L, 1, "backend") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "aloop.new_event_loop: backend must be a string, got %s",
                        luaL_typename(L, -1));
    bname = lua_tostring(L, -1);
  }
  if (!bname) bname = getenv("ALOOP_BACKEND");
  unsigned int flags = EVFLAG_AUTO;
  if (bname && *bname) {
    int found = 0;
    for (int i = 0; backends[i].name; i++) {
      if (strcmp(backends[i].name, bname) == 0) {
        flags = backends[i].flag;
        found = 1;
      }
    }
    if (!found) return luaL_error(L, "aloop: unknown backend '%s'", bname);
    if (!(ev_supported_backends() & flags))
      return luaL_error(L, "aloop: backend '%s' is not supported on this system", bname);
  }
  al_loop_new(L, NULL, flags, bname);
  return 1;
}

/*
** Pushes a new loop userdata around `ev`, or around a new libev loop made with `flags` when ev
** is NULL (bname names the backend in errors). A given ev loop is never destroyed by aloop.
*/
al_Loop *al_loop_new(lua_State *L, struct ev_loop *ev, unsigned int flags, const char *bname) {
  al_Loop *loop = lua_newuserdatauv(L, sizeof *loop, 1);
  memset(loop, 0, sizeof *loop);
  loop->magic = AL_LOOP_MAGIC;
  loop->timer_seq = 1;
  loop->ready_ref = loop->handler_ref = loop->timers.ref = loop->tasks.ref = LUA_NOREF;
  loop->closed = 1; /* until fully set up: __gc must then only destroy the mutex */
  pthread_mutex_init(&loop->ts_mu, NULL);
  al_setmt(L, al_state(L), AL_MT_LOOP);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  loop->ev = ev ? ev : ev_loop_new(flags | EVFLAG_NOSIGMASK);
  if (!loop->ev) {
    luaL_error(L, "aloop: cannot create a libev loop (backend %s)", bname ? bname : "default");
    return NULL;
  }
  loop->own_ev = ev == NULL;
  loop->st = al_state(L);
  loop->slow_callback_duration = 0.1;
  const char *dbg = getenv("ALOOP_DEBUG");
  loop->debug = dbg && *dbg && strcmp(dbg, "0") != 0;
  lua_createtable(L, READY_MIN, 0);
  loop->ready_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  loop->ready_cap = READY_MIN;
  al_anchors_init(L, &loop->timers);
  al_anchors_init(L, &loop->tasks);
  ev_timer_init(&loop->wake, wake_cb, 0., 0.);
  al_ts_init(loop);
  loop->closed = 0;
  if (loop->debug) al_debug_note_creation(L, loop, -1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &key_loops);
  lua_pushvalue(L, -2);
  lua_rawsetp(L, -2, loop);
  lua_pop(L, 1);
  return loop;
}

static int l_get_running_loop(lua_State *L) {
  al_State *st = AL_UPSTATE(L);
  if (!st->running) return luaL_error(L, "aloop: no running event loop");
  al_push_running(L, st);
  return 1;
}

/* The running loop, else the one set with set_event_loop, else a new one (then remembered). */
static int l_get_event_loop(lua_State *L) {
  al_State *st = al_state(L);
  if (st->running) {
    al_push_running(L, st);
    return 1;
  }
  if (st->default_loop_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, st->default_loop_ref);
    return 1;
  }
  lua_settop(L, 0);
  l_new_event_loop(L);
  lua_pushvalue(L, -1);
  st->default_loop_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int l_set_event_loop(lua_State *L) {
  al_State *st = al_state(L);
  if (!lua_isnoneornil(L, 1)) al_checkloop(L, 1);
  lua_settop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, st->default_loop_ref);
  st->default_loop_ref = lua_isnil(L, 1) ? LUA_NOREF : luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* _get_running_loop(): the running loop or nil (for Lua-side helpers). */
static int l_running_loop_or_nil(lua_State *L) {
  al_State *st = AL_UPSTATE(L);
  if (st->running) al_push_running(L, st);
  else lua_pushnil(L);
  return 1;
}

static const luaL_Reg loop_methods[] = {
    {"run_forever", loop_run_forever},
    {"stop", loop_stop},
    {"close", loop_close},
    {"is_running", loop_is_running},
    {"is_closed", loop_is_closed},
    {"time", loop_time},
    {"backend", loop_backend},
    {"call_soon", loop_call_soon},
    {"call_soon_threadsafe", loop_call_soon_threadsafe},
    {"call_later", loop_call_later},
    {"call_at", loop_call_at},
    {"create_future", loop_create_future},
    {"set_debug", loop_set_debug},
    {"get_debug", loop_get_debug},
    {NULL, NULL},
};

static const luaL_Reg loop_meta[] = {
    {"__newindex", loop_newindex},
    {"__gc", loop_gc},
    {"__close", loop_close},
    {"__tostring", loop_tostring},
    {NULL, NULL},
};

/*
** A C method called where the calling code gives it no name (pcall(loop.call_later, loop, "x"))
** would be '?' in its argument errors. Lua then looks for the function in the tables of
** package.loaded: the method table on top is put there as `name`, so the error says "bad
** argument #2 to 'aloop.Loop.call_later'" (and a traceback "function 'aloop.Loop.call_later'").
** The methods io, signal, process, task and the Lua half add to core.Loop later are found too.
*/
static void name_methods(lua_State *L, const char *name) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

static const luaL_Reg module_funcs[] = {
    {"new_event_loop", l_new_event_loop},
    {"get_event_loop", l_get_event_loop},
    {"set_event_loop", l_set_event_loop},
    {"get_running_loop", l_get_running_loop},
    {"_running_loop", l_running_loop_or_nil},
    {"_loop_pending", al_l_loop_pending},
    {NULL, NULL},
};

/* Registers the Loop class; core.Loop is its method table (io, signal, process, task add to it). */
void al_loop_open(lua_State *L, int core) {
  lua_newtable(L); /* weak registry of loops, for pushing a loop from C */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &key_loops);

  al_new_class(L, AL_LOOP_MT, loop_methods, loop_meta);
  al_cachemt(L, -2, AL_MT_LOOP);
  lua_pushvalue(L, -1);
  lua_setfield(L, core, "Loop");
  name_methods(L, AL_LOOP_MT);
  lua_pushnil(L);
  lua_insert(L, -2);
  lua_pushcclosure(L, loop_index, 2);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushvalue(L, core);
  lua_pushlightuserdata(L, al_state(L));
  luaL_setfuncs(L, module_funcs, 1); /* upvalue 1: the al_State (AL_UPSTATE) */
  lua_pop(L, 1);
}
