/*
** Internal declarations shared by the C core (al_* names). The public, stable C API is
** include/aloop.h; nothing here is promised to hosts.
** Objects: al_Loop (one libev loop + ready queue + timer heap), al_Handle (a scheduled call),
** al_Future and al_Task (a future that steps a coroutine).
*/
#ifndef ALOOP_INTERNAL_H
#define ALOOP_INTERNAL_H

#include <ev.h>
#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "aloop.h"

/* Metatable names. */
#define AL_LOOP_MT "aloop.Loop"
#define AL_HANDLE_MT "aloop.Handle"
#define AL_TIMER_MT "aloop.TimerHandle"
#define AL_FUTURE_MT "aloop.Future"
#define AL_TASK_MT "aloop.Task"

enum { AL_MT_LOOP, AL_MT_HANDLE, AL_MT_TIMER, AL_MT_FUTURE, AL_MT_TASK };

/*
** The one type check of aloop's userdata: its size and a magic number its C struct holds in a
** `magic` field (set when it is made). NULL when idx holds anything else (light userdata have no
** size). Measured under callgrind per checked method call: 30 instructions, against 96 for
** comparing a cached metatable pointer, 153 for a metatable upvalue, 181 for a metatable fetched
** by registry ref and 323 for luaL_checkudata (`bench/callgrind typecheck`, bench/RESULTS.md).
*/
static inline void *al_toudata(lua_State *L, int idx, size_t size, size_t magic_at,
                               uint32_t magic) {
  void *p = lua_touserdata(L, idx);
  if (!p || lua_rawlen(L, idx) != size) return NULL;
  return *(const uint32_t *)((const char *)p + magic_at) == magic ? p : NULL;
}
#define AL_TOUDATA(L, idx, T, MAGIC) \
  ((T *)al_toudata((L), (idx), sizeof(T), offsetof(T, magic), (MAGIC)))
/* The same, raising "<name> expected" for anything else. */
static inline void *al_checkudata(lua_State *L, int idx, size_t size, size_t magic_at,
                                  uint32_t magic, const char *name) {
  void *p = al_toudata(L, idx, size, magic_at, magic);
  if (!p) luaL_typeerror(L, idx, name);
  return p;
}
#define AL_CHECKUDATA(L, idx, T, MAGIC, NAME) \
  ((T *)al_checkudata((L), (idx), sizeof(T), offsetof(T, magic), (MAGIC), (NAME)))

/* Registry keys (addresses of these are unique light userdata). */
extern const char al_key_state;  /* the al_State userdata of this Lua state */
extern const char al_key_errors; /* table: error class name -> class table */

/* What a userdata in the ready queue is. */
enum { AL_KIND_HANDLE = 1, AL_KIND_FUTURE, AL_KIND_TASK };

enum { AL_PENDING = 0, AL_FINISHED, AL_CANCELLED };

enum { AL_LOG_DEBUG = 0, AL_LOG_INFO, AL_LOG_WARNING, AL_LOG_ERROR };

#define AL_READ_SIZE 65536 /* default bytes asked of one read(2)/recv(2) from Lua */

typedef struct al_Loop al_Loop;
typedef struct al_Task al_Task;

/*
** Per-Lua-state module data (one per lua_State that opened aloop): which loop is running
** and the cached metatables used for fast type checks on hot paths.
*/
typedef struct al_State {
  al_Loop *running; /* the loop whose run_* is active in this state, or NULL */
  int running_ref;  /* registry slot caching the running loop's userdata (al_push_running) */
  int mt_ref[5]; /* registry refs of the metatables, by AL_MT_* (no name lookups on hot paths) */
  int default_loop_ref; /* registry ref of the loop get_event_loop returns, or LUA_NOREF */
  int coro_mt_ref;      /* metatable of coroutine objects (set by init.lua), or LUA_NOREF */
  int log_level;        /* AL_LOG_*: messages below it are dropped */
} al_State;

/*
** A scheduled call: uservalue 1 is the function, 2..n+1 its arguments. TimerHandles also
** sit in the loop's timer heap (in_heap) until they fire or a cancelled one is dropped.
*/
#define AL_HANDLE_MAGIC 0x686e646cu /* "hndl" */

typedef struct al_Handle {
  unsigned char kind; /* AL_KIND_HANDLE */
  unsigned char cancelled;
  unsigned char is_timer;
  unsigned char in_heap; /* timers: still in the loop's heap (maybe cancelled) */
  int nargs;
  al_Loop *loop;
  uint32_t magic; /* AL_HANDLE_MAGIC */
  double when;    /* timers: deadline on the loop clock */
} al_Handle;

/* Uservalue slots of futures and tasks. */
enum {
  AL_FUV_LOOP = 1, /* the loop userdata (keeps it alive) */
  AL_FUV_RESULT,   /* one result, a table of results, the exception, or the cancel message */
  AL_FUV_CBS,      /* nil, one callback, or a table of callbacks */
  AL_FUV_TB,       /* traceback string for the exception, when known */
  AL_FUV_NAME,     /* tasks: name */
  AL_FUV_CO,       /* tasks: the coroutine (thread) */
  AL_FUV_WAITER,   /* tasks: the future the task is suspended on */
  AL_FUV_CORO,     /* tasks: the coroutine object or function it was created from */
  AL_FUV_CMSG,     /* tasks: pending cancel message */
  AL_TASK_NUV = AL_FUV_CMSG,
  AL_FUTURE_NUV = AL_FUV_TB
};

#define AL_FUTURE_MAGIC 0x66757475u /* "futu": futures and tasks (al_tofuture, al_totask) */

typedef struct al_Future {
  unsigned char kind; /* AL_KIND_FUTURE or AL_KIND_TASK */
  unsigned char state;
  unsigned char has_exc;  /* finished with an exception */
  unsigned char log_exc;  /* exception not retrieved yet: report when collected */
  unsigned char multi;    /* AL_FUV_RESULT holds a table of nres values */
  unsigned char cancel_hook; /* pending, and AL_FUV_RESULT holds a function run by cancel() */
  int nres;
  int ncb; /* number of done callbacks (AL_FUV_CBS is a table when > 1) */
  uint32_t magic; /* AL_FUTURE_MAGIC */
  al_Loop *loop;
} al_Future;

struct al_Task {
  al_Future fut;
  lua_State *co;
  unsigned char started;
  unsigned char must_cancel;
  unsigned char scheduled; /* a step is in the ready queue */
  unsigned char waking;    /* in the ready queue to schedule its step (a sleep() timer fired) */
  unsigned char has_cmsg;
  unsigned char park_woken; /* its last park ended with al_task_wake_parked (not a cancel) */
  int num_cancels;
  int slot; /* anchor in loop->tasks while unfinished */
  uint64_t sleep_seq; /* in sleep(): the seq of its timer heap entry (0: not sleeping) */
  struct al_Park *park; /* the C object it waits on (al_task_park), or NULL */
  uint64_t id;
};

/*
** A C object a task can wait on without a future (a StreamReader's buffer): it keeps the al_Task
** pointer while the task is parked (the loop keeps an unfinished task alive), wakes it with
** al_task_wake_parked, and forgets it in unpark() when the task is cancelled first.
*/
typedef struct al_Park {
  void (*unpark)(lua_State *L, struct al_Park *p, struct al_Task *t);
} al_Park;

/* Values kept alive for C (anchors.c): a Lua array with a C free list of slots. */
typedef struct al_Anchors {
  int ref; /* registry ref of the array */
  int *free;
  int nfree, capfree;
  int top;   /* highest slot ever used */
  int count; /* values anchored now */
} al_Anchors;

/*
** A timer in the heap: a TimerHandle, or a task in sleep() (task != NULL). The deadline is
** copied here so comparisons do not chase pointers.
*/
typedef struct al_HeapEntry {
  double when;
  uint64_t seq; /* scheduling order (ties); a sleeping task's entry is live while equal to
                   task->sleep_seq */
  al_Handle *h;
  struct al_Task *task;
  int slot; /* anchor of the userdata (handle or task) in loop->timers */
} al_HeapEntry;

/* A call posted from another OS thread (see threadsafe.c). */
typedef struct al_TsCall {
  struct al_TsCall *next;
  aloop_cfn fn;
  void (*drop)(void *ud); /* or NULL: called instead of fn when the loop closes first */
  void *ud;
} al_TsCall;

#define AL_LOOP_MAGIC 0x616c6f6fu /* "aloo" */

struct al_Loop {
  uint32_t magic; /* AL_LOOP_MAGIC: a cheap type check for the hot paths */
  struct ev_loop *ev;
  unsigned char own_ev, running, stopping, closed, debug, interrupted;
  unsigned char closing; /* loop:close() is under way (a handler calling it again: no-op) */
  lua_State *L;     /* the state running this loop (valid while running) */
  lua_State *cur_L; /* the Lua thread executing right now (for the SIGINT hook) */
  al_State *st;
  /* Ready queue: a ring buffer kept in the array part of a Lua table (registry ref). */
  int ready_ref;
  long ready_head, ready_tail, ready_cap; /* cap is a power of two */
  long batch_left; /* entries of this iteration not run yet */
  /* Timers: a binary heap ordered by (when, seq); cancelled ones leave lazily. */
  al_HeapEntry *heap;
  long heap_n, heap_cap, heap_cancelled;
  uint64_t timer_seq; /* starts at 1: 0 means "not sleeping" in al_Task.sleep_seq */
  al_Anchors timers; /* the TimerHandles in the heap */
  al_Anchors tasks;  /* unfinished tasks: the loop keeps them alive */
  int handler_ref; /* exception handler function, or LUA_NOREF */
  uint64_t task_counter;
  al_Task *current_task;
  double slow_callback_duration;
  ev_timer wake;  /* fires at the earliest timer's deadline */
  ev_async async; /* wake-up from other threads and signal handlers */
  /* Thread-safe calls (any OS thread). */
  pthread_mutex_t ts_mu;
  al_TsCall *ts_head, *ts_tail;
  int ts_closed;
  volatile int sigint_flag;
  int nwatchers; /* active watchers of loop objects (only io/watcher.c changes it): an iteration
                    with ready callbacks polls only if > 0 */
  pthread_t thread; /* the OS thread running the loop (debug mode checks it) */
  int sigint_watched; /* a Lua handler owns SIGINT (signal.c): no KeyboardInterrupt handler */
};

/* anchors.c */
void al_anchors_init(lua_State *L, al_Anchors *a);
void al_anchors_free(lua_State *L, al_Anchors *a);
int al_anchor(lua_State *L, al_Anchors *a); /* pops the value; returns its slot */
void al_anchor_push(lua_State *L, al_Anchors *a, int slot);
void al_unanchor(lua_State *L, al_Anchors *a, int slot);

/* loop.c */
al_State *al_state(lua_State *L); /* a registry lookup: hot functions use AL_UPSTATE */
/* The al_State in a function registered with it as upvalue 1 (the core table's functions of
   loop.c and task.c): no registry lookup. */
#define AL_UPSTATE(L) ((al_State *)lua_touserdata((L), lua_upvalueindex(1)))
void al_setmt(lua_State *L, al_State *st, int which); /* metatable of the value on top */
void al_cachemt(lua_State *L, int idx, int which); /* al_setmt's ref to the metatable at idx */
/*
** The class recipe of every aloop object (Lua's liolib createmeta): the metatable `name`
** (luaL_newmetatable, which sets the __name that type errors show) gets the metamethods of `meta`
** (__gc, __close, __tostring, ...) and a new table of `methods` as __index; either list may be
** NULL. Opening aloop.core again in the same state fills it again.
** STACK: -> metatable, method table (to add more methods, export it or wrap it in an __index
** function).
*/
void al_new_class(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *meta);
al_Loop *al_checkloop(lua_State *L, int idx);
al_Loop *al_toloop(lua_State *L, int idx); /* or NULL; never raises */
double al_now(void);
void al_ready_push(lua_State *L, al_Loop *loop); /* pops a handle/task userdata */
void al_push_loop(lua_State *L, al_Loop *loop);  /* pushes the loop userdata */
void al_set_running(lua_State *L, al_State *st, al_Loop *loop); /* loop starts/stops (NULL) */
void al_push_running(lua_State *L, al_State *st); /* the running loop (st->running != NULL) */
void al_loop_open(lua_State *L, int core);
al_Loop *al_loop_new(lua_State *L, struct ev_loop *ev, unsigned int flags, const char *bname);
void al_loop_run_once(lua_State *L, al_Loop *loop, int mode); /* mode: ALOOP_STEP_* */

/*
** Every resource that owns an fd, a watcher or threads (transport, listener, process, fd and
** signal watcher, DNS pool) starts with this header and registers itself while open
** (resource.c): loop:close() calls shutdown for each one still open, which stops its watchers,
** closes its fd and unregisters it.
*/
typedef struct al_Resource {
  void (*shutdown)(lua_State *L, void *obj);
} al_Resource;

/* resource.c */
void al_resource_add(lua_State *L, al_Loop *loop, int idx); /* the userdata at idx is open */
void al_resource_remove(lua_State *L, al_Loop *loop, void *obj);
/* The loop's own resources (watchers, DNS pool): closed silently, after the others. */
void al_resource_add_internal(lua_State *L, al_Loop *loop, int idx);
void al_resource_remove_internal(lua_State *L, al_Loop *loop, void *obj);
void al_resources_close(lua_State *L, al_Loop *loop, int loopidx); /* loop:close() */
void al_resources_close_own(lua_State *L, al_Loop *loop, int loopidx); /* unclosed loop's __gc */

/*
** io/watcher.c: the only code that changes loop->nwatchers. Each call starts or stops the
** watcher unless it already is (or is not) active. Timers counted this way should repeat (a
** one-shot timer is inactive once it fired and would stay counted).
*/
void al_watch_start(al_Loop *loop, ev_io *w);
void al_watch_stop(al_Loop *loop, ev_io *w);
void al_watch_timer_start(al_Loop *loop, ev_timer *w);
void al_watch_timer_stop(al_Loop *loop, ev_timer *w);
void al_watch_signal_start(al_Loop *loop, ev_signal *w);
void al_watch_signal_stop(al_Loop *loop, ev_signal *w);
void al_io_open(lua_State *L, int core);

/* io/signal.c */
int al_checksignal(lua_State *L, int idx); /* a number or a name like "SIGTERM" */
void al_signal_open(lua_State *L, int core);

/* process.c (subprocess.lua is its Lua half) */
void al_process_open(lua_State *L, int core);

/* handle.c */
al_Handle *al_handle_new(lua_State *L, al_Loop *loop, int fnidx, int nargs, int timer);
void al_timer_schedule(lua_State *L, al_Loop *loop, al_Handle *h, int hidx);
void al_timer_cancelled(lua_State *L, al_Loop *loop); /* a timer in the heap was cancelled */
uint64_t al_timer_sleep(lua_State *L, al_Loop *loop, al_Task *t, int tidx, double when);
double al_timer_next(lua_State *L, al_Loop *loop);    /* earliest live deadline, or -1 */
void al_timers_collect(lua_State *L, al_Loop *loop, double now);
void al_handle_open(lua_State *L, int core);

/* future.c */
al_Future *al_tofuture(lua_State *L, int idx); /* future or task, else NULL */
al_Future *al_checkfuture(lua_State *L, int idx);
al_Future *al_future_new(lua_State *L, al_Loop *loop, int loopidx);
void al_future_set_result(lua_State *L, al_Future *f, int fidx, int first, int n);
void al_future_set_exception(lua_State *L, al_Future *f, int fidx, int eidx, int tbidx);
int al_future_cancel(lua_State *L, al_Future *f, int fidx, int msgidx);
void al_future_add_callback(lua_State *L, al_Future *f, int fidx, int cbidx);
int al_future_push_result(lua_State *L, al_Future *f, int fidx); /* or raises */
int al_future_gc(lua_State *L);
extern const luaL_Reg al_future_methods[];
void al_future_open(lua_State *L, int core);

/* task.c */
al_Task *al_totask(lua_State *L, int idx);
void al_task_run(lua_State *L, al_Task *t, int tidx); /* its ready-queue entry: step (or wake) */
int al_await(lua_State *L, int fidx); /* yields inside a task */
/* Both pop the task userdata; they are the only code outside task_step that wakes a task. */
void al_task_wake_sleeper(lua_State *L, al_Task *t); /* its sleep() timer fired */
void al_task_wake_waiter(lua_State *L, al_Task *t);  /* the future it waits on finished */
/*
** Waiting on a C object (al_Park) instead of a future, as sleep() waits in the timer heap: a C
** method gets the running task of its loop (al_task_parker raises if there is none), stores it, and returns
** al_task_park(L, t, p, top, k) with its own arguments at 1..top; k(L, status, top) runs when the
** task resumes and calls al_task_resumed(L, top) first (it raises a thrown-in CancelledError).
** The object wakes the task with al_task_wake_parked (the task is runnable again at once).
*/
al_Task *al_task_parker(lua_State *L, al_Loop *loop, const char *what);
/* Raises "aloop.<what>: not inside a task ..." at the caller's line (for C functions). */
int al_not_in_task(lua_State *L, const char *what);
int al_task_park(lua_State *L, al_Task *t, al_Park *p, int top, lua_KFunction k);
void al_task_resumed(lua_State *L, int top);
/* In k, before al_task_resumed: 1 if the task was resumed by a thrown-in error (a cancel), 0 if
   by its wake-up. A task woken and then cancelled before it ran gets both: t->park_woken says it
   consumed a wake-up, which a waiter list must then pass on (sync/waitlist.c). */
int al_task_thrown(lua_State *L, int top);
void al_task_wake_parked(lua_State *L, al_Task *t);
void al_task_open(lua_State *L, int core);
al_Task *al_checktask(lua_State *L, int idx);

/* task_stack.c */
void al_task_push_stack_text(lua_State *L, int idx); /* "Stack for <Task ...>"; never raises */
void al_task_stack_open(lua_State *L, int core);

/* exception.c */
int al_msgh(lua_State *L); /* message handler of protected calls into user code */
void al_push_lasttb(lua_State *L); /* traceback of the last error al_msgh saw */
void al_report(lua_State *L, al_Loop *loop, int ctx); /* call_exception_handler(ctx) */
/* Pops the message string on top and pushes a new handler context {message =, exception = the
   value at eidx (absolute), traceback = al_push_lasttb's}; the caller adds its own fields. */
void al_push_error_context(lua_State *L, int eidx);
void al_push_description(lua_State *L, int idx); /* tostring(v), or a placeholder if it raises */
void al_exception_open(lua_State *L, int core);

/* errors.c */
void al_error_push(lua_State *L, const char *cls, const char *msg); /* new error object */
int al_error_raise(lua_State *L, const char *cls, const char *fmt, ...);
int al_error_is(lua_State *L, int idx, const char *cls);
void al_oserror_push(lua_State *L, int err, const char *what); /* the OSError subclass for err */
int al_oserror_raise(lua_State *L, int err, const char *what);
void al_errors_open(lua_State *L, int core);

/* log.c */
void al_log(lua_State *L, int level, const char *fmt, ...);
void al_log_pushed(lua_State *L, int level); /* logs the string on top (popped) */
void al_log_open(lua_State *L, int core);

/* debug.c (debug mode) */
void al_debug_note_creation(lua_State *L, al_Loop *loop, int idx); /* if debug: remember where */
int al_debug_push_creation(lua_State *L, int idx); /* pushes that traceback or returns 0 */
int al_debug_push_creation_site(lua_State *L, int idx); /* "file:line", or returns 0 */
void al_debug_check_thread(lua_State *L, al_Loop *loop);
/* logs "Executing <what> took N seconds" if the callback that began at t0 was slow */
void al_debug_slow(lua_State *L, al_Loop *loop, double t0, const char *what, ...);
void al_debug_open(lua_State *L, int core);

/* threadsafe.c */
void al_ts_init(al_Loop *loop);
void al_ts_drain(lua_State *L, al_Loop *loop);
void al_ts_close(al_Loop *loop);
int al_call_threadsafe(al_Loop *loop, aloop_cfn fn, void (*drop)(void *), void *ud);
void al_sigint_install(al_Loop *loop);  /* aloop's SIGINT handler (KeyboardInterrupt) */
void al_sigint_restore(al_Loop *loop);  /* the handler that was there before */
void al_sigint_disable_thread(void);    /* this thread never installs it (remote loops) */

/* embed.c */
int al_l_loop_pending(lua_State *L); /* core._loop_pending(loop): see aloop.busted */

#endif
