/*
** aloop: an asyncio-style runtime for Lua 5.4 on libev. Public C API for host programs.
** Link with -laloop (pkg-config aloop: -laloop -lev -lpthread -lm, plus lua5.4).
**
** OPENING. luaL_requiref(L, "aloop", luaopen_aloop, 1) opens the module in a host lua_State
** (after luaL_openlibs, or at least the package library); it pushes the same table that
** `require "aloop"` returns. Loops, futures and tasks are Lua userdata of the module, so the
** functions below take stack indices, like the Lua C API.
**
** THREADS. A lua_State belongs to one OS thread at a time, and so does every loop in it: every
** function here except aloop_call_threadsafe and aloop_promise_resolve/_reject/_cancel must be
** called on the thread that runs the loop (the "loop thread"), never while another thread
** runs it. Host threads reach the loop only through those thread-safe entries. As a cheap
** check, the loop-thread functions refuse to work (ALOOP_ETHREAD, the state untouched) when the
** loop is running on another OS thread; a call made while the loop is idle cannot be detected.
**
** ERRORS. The functions never raise (no longjmp into the host). They return a status; on
** failure on the loop thread they leave one error value on the stack (a message or an aloop
** error object such as InvalidStateError, whose `traceback` field says where it came from).
**
** SHUTDOWN. aloop_close(L, idx) (or loop:close()) stops and frees what the loop holds; then
** lua_close(L) frees the rest. A host's own libev loop handed to aloop_new_loop must outlive
** the aloop loop (close the aloop loop, or lua_close, before ev_loop_destroy).
*/
#ifndef ALOOP_H
#define ALOOP_H

#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ALOOP_VERSION "0.1.0" /* the one place: CMake, the interpreter and core.version read it */

struct ev_loop; /* libev's loop (<ev.h>) */

typedef struct al_Loop aloop_loop;

/* Status codes. Negative values are failures. */
/* Registry field holding {message, traceback} of the last task that failed with a plain string
   error: a host printing an uncaught error equal to message can show where the task raised it
   (the interpreter does). */
#define ALOOP_TASK_ERROR_KEY "aloop.task_error"

#define ALOOP_OK 0
#define ALOOP_STOPPED 1       /* aloop_step: loop:stop() was called (the request is consumed) */
#define ALOOP_ECLOSED (-1)    /* the loop is closed (aloop_call_threadsafe: or out of memory) */
#define ALOOP_ERROR (-2)      /* a Lua error (bad argument, an error raised by the loop) */
#define ALOOP_ESTATE (-3)     /* the future is already done (an InvalidStateError is pushed) */
#define ALOOP_ETHREAD (-4)    /* called from another OS thread while the loop runs; nothing pushed */

/* Modes of aloop_step. */
#define ALOOP_STEP_WAIT 0   /* poll, blocking until I/O, a timer, a wake-up, or ready callbacks */
#define ALOOP_STEP_NOWAIT 1 /* poll without blocking */
#define ALOOP_STEP_NOPOLL 2 /* do not poll: the host's own ev_run polls the shared libev loop */

/* A C function posted to a loop: it runs on the loop's thread with the loop's lua_State. */
typedef void (*aloop_cfn)(lua_State *L, void *ud);

/* Opens the module: pushes the `aloop` table (the same table `require "aloop"` returns). */
int luaopen_aloop(lua_State *L);

/* Opens the C core alone (module `aloop.core`); luaopen_aloop uses it. */
int luaopen_aloop_core(lua_State *L);

/* `require "aloop.busted"` from a stock lua5.4 (the busted helper; see README). */
int luaopen_aloop_busted(lua_State *L);

/* ---------------------------------------------------------------------------------------- */
/* Loops */

/*
** Pushes a new loop (as aio.new_event_loop() does) and returns it. With ev == NULL the loop
** makes and owns its libev loop. With the host's own `ev`, aloop puts its watchers on it (a
** wake-up ev_async, a timer, fd watchers) and never destroys it; both then share one loop: the
** host's watchers run while aloop runs (aloop_run, aloop_step), and aloop's run while the host
** runs ev_run itself (see aloop_step with ALOOP_STEP_NOPOLL). On failure returns NULL with the
** error pushed (e.g. luaopen_aloop was not called on L).
*/
aloop_loop *aloop_new_loop(lua_State *L, struct ev_loop *ev);

/* The loop behind the loop userdata at `idx`, or NULL when it is not a loop. */
aloop_loop *aloop_toloop(lua_State *L, int idx);

/*
** loop:run_forever(): runs the loop at `loop_idx` until loop:stop(). While it runs, SIGINT
** (when the host installed no handler) makes it fail with aio.KeyboardInterrupt.
** ALOOP_OK, or a failure with the error pushed (KeyboardInterrupt, closed, already running).
*/
int aloop_run(lua_State *L, int loop_idx);

/*
** loop:run_until_complete(aw): runs the loop until the awaitable at `aw_idx` (a future, a task,
** a coroutine object or a function) is done. Returns the number of results pushed (>= 0), or a
** failure (ALOOP_ERROR, ALOOP_ECLOSED, ALOOP_ETHREAD) with its error pushed: the future's own
** error, unchanged.
*/
int aloop_run_until_complete(lua_State *L, int loop_idx, int aw_idx);

/*
** Runs exactly one iteration of the loop at `loop_idx`, for a host that has its own main loop:
** poll (per `mode`, ALOOP_STEP_*), move due timers to the ready queue, run the callbacks and
** task steps that were ready; what they schedule runs in the next step. The loop counts as
** running during the step (aio.get_running_loop() works in callbacks). Unlike aloop_run, a step
** installs no SIGINT handler (the host owns its signals; add one with loop:add_signal_handler).
** Returns ALOOP_OK; ALOOP_STOPPED when loop:stop() was called (before or during the step; the
** request is cleared); or a failure with the error pushed: aio.KeyboardInterrupt raised by a
** callback, a closed loop (ALOOP_ECLOSED), a step from inside the running loop (ALOOP_ERROR).
**
** Driving aloop from a host's own libev loop (examples/embed/host_evloop.c): create the loop with
** aloop_new_loop(L, host_ev); in an ev_prepare watcher ask aloop_next_timeout() and keep the
** host's poll from sleeping past it (an ev_idle when 0, an ev_timer when > 0); in an ev_check
** watcher of priority EV_MINPRI (so it runs after the I/O and wake-up callbacks of the same
** poll) call aloop_step(L, idx, ALOOP_STEP_NOPOLL). The host's ev_run then does all polling. A
** host with a main loop of another kind calls aloop_step(L, idx, ALOOP_STEP_NOWAIT) once per
** turn (or ALOOP_STEP_WAIT when it has nothing else to do).
*/
int aloop_step(lua_State *L, int loop_idx, int mode);

/*
** How long the loop at `loop_idx` may sleep before its next step: 0 when callbacks are ready
** (or it is stopping), the seconds until its earliest timer, or -1 when it waits only for I/O
** and wake-ups. -1 also for a closed loop or a bad index.
*/
double aloop_next_timeout(lua_State *L, int loop_idx);

/*
** loop:close(): reports pending tasks, drops queued callbacks and timers, stops its watchers and
** frees its libev loop (unless it is the host's). Idempotent. ALOOP_OK or a failure (pushed).
*/
int aloop_close(lua_State *L, int loop_idx);

/*
** Posts fn(L, ud) to run on the loop's thread at its next iteration, waking it if it sleeps.
** Safe from any OS thread; never blocks for long. fn runs under a protected call: an error it
** raises goes to the loop's exception handler. Returns 0, or -1 (ALOOP_ECLOSED) when the loop
** is closed or memory is short (fn will not run; the caller still owns ud). Calls still queued
** when the loop closes are dropped without running.
*/
int aloop_call_threadsafe(aloop_loop *loop, aloop_cfn fn, void *ud);

/* ---------------------------------------------------------------------------------------- */
/* Futures (loop thread) */

/* Pushes a new pending future of the loop at `loop_idx` (loop:create_future()). ALOOP_OK, or a
   failure with the error pushed instead. */
int aloop_future_new(lua_State *L, int loop_idx);

/*
** fut:set_result(...) for the future at `fut_idx` with the `nresults` values on top of the stack
** (popped). Done callbacks and awaiting tasks run in a later iteration. Fails with ALOOP_ESTATE
** (InvalidStateError pushed) when the future is already done, ALOOP_ECLOSED when its loop is
** closed, ALOOP_ERROR when `fut_idx` is not a plain Future (a Task completes itself).
*/
int aloop_future_set_result(lua_State *L, int fut_idx, int nresults);

/* fut:set_exception(err) with the error value on top of the stack (popped); as above. */
int aloop_future_set_exception(lua_State *L, int fut_idx);

/* ---------------------------------------------------------------------------------------- */
/* Promises: complete a future later, from any thread */

/*
** A promise is a one-shot handle on a pending future that another OS thread completes. Make it on
** the loop thread; it keeps the future (and its loop) alive. Hand it to a host thread, which
** consumes it with exactly one of resolve, reject or cancel: these post the completion to the
** loop thread (aloop_call_threadsafe) and free the promise, whatever happens next. Using a
** promise twice, or after lua_close, is undefined (as free() twice is); never consuming one
** leaks it.
*/
typedef struct aloop_promise aloop_promise;

/*
** Runs on the loop thread to push a promise's values: returns how many it pushed. It runs in a
** protected call; an error it raises becomes the future's exception. May be NULL: no values.
*/
typedef int (*aloop_pushfn)(lua_State *L, void *ud);

/* A promise for the pending plain Future at `fut_idx`; NULL (error pushed) when it is not one. */
aloop_promise *aloop_promise_new(lua_State *L, int fut_idx);

/*
** Completes the future with the values push(L, ud) pushes on the loop thread (reject: with the
** one error value it pushes). If the future was cancelled meanwhile (its awaiter gave up), the
** values are dropped quietly; if it was finished by someone else, an InvalidStateError goes to
** the loop's exception handler. push still runs in both cases, so it may free ud.
** Returns ALOOP_OK, or ALOOP_ECLOSED when the loop is closed (push does not run; the caller
** still owns ud; the future stays referenced until lua_close). If the loop closes after the
** post but before the completion ran, push does not run either.
*/
int aloop_promise_resolve(aloop_promise *p, aloop_pushfn push, void *ud);
int aloop_promise_reject(aloop_promise *p, aloop_pushfn push, void *ud);

/* Cancels the future on the loop thread (a no-op when it is done). ALOOP_OK or ALOOP_ECLOSED. */
int aloop_promise_cancel(aloop_promise *p);

#ifdef __cplusplus
}
#endif

#endif
