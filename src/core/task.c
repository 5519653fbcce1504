/*
** Tasks: a Future that steps a Lua coroutine with lua_resume. A task suspends by yielding the
** future it waits on (al_await); the stepper hangs the task on that future's callbacks and the
** future's completion schedules the next step. Cancellation raises CancelledError at the
** suspension point. The coroutine body runs under a protected call inside the coroutine, so
** to-be-closed variables are closed on return, error and cancellation.
** Also sleep(), current_task() and all_tasks().
*/
#include <math.h>
#include <string.h>

#include "core/internal.h"

static const char key_throw = 0; /* marker: "resume by raising the next value" */
static const char key_yield0 = 0; /* what sleep(0) yields: "step me again soon" */
static const char key_sleep = 0;  /* what sleep(d > 0) yields: "the timer heap wakes me" */
static const char key_park = 0;   /* what al_task_park yields: "a C object wakes me" */

al_Task *al_totask(lua_State *L, int idx) {
  al_Future *f = al_tofuture(L, idx);
  return f && f->kind == AL_KIND_TASK ? (al_Task *)f : NULL;
}

al_Task *al_checktask(lua_State *L, int idx) {
  al_Task *t = al_totask(L, idx);
  if (!t) luaL_typeerror(L, idx, "aloop Task");
  return t;
}

/* The task whose coroutine is L, or NULL (a callback, the main chunk, a nested coroutine). */
static al_Task *running_task(lua_State *L, al_State *st) {
  al_Loop *loop = st->running;
  if (!loop || !loop->current_task || loop->current_task->co != L) return NULL;
  return loop->current_task;
}

/* Pushes the "not inside a task" message that names the fix (or, inside a task but on a
   coroutine of the caller's own, says not to suspend there). */
static void push_not_in_task(lua_State *L, const char *what) {
  al_State *st = al_state(L);
  if (st->running && st->running->current_task)
    lua_pushfstring(L,
                    "aloop.%s: called from a coroutine that is not the task's own "
                    "(do not suspend inside coroutine.wrap/resume within a task)",
                    what);
  else
    lua_pushfstring(L,
                    "aloop.%s: not inside a task; use aio.run(main) or "
                    "loop:run_until_complete(...)",
                    what);
}

static int not_in_task(lua_State *L, const char *what) {
  push_not_in_task(L, what);
  return lua_error(L);
}

int al_not_in_task(lua_State *L, const char *what) {
  luaL_where(L, 1);
  push_not_in_task(L, what);
  lua_concat(L, 2);
  return lua_error(L);
}

/* core._not_in_task(what) -> the same message, for the suspending functions written in Lua
   (they raise it at their caller's level). */
static int l_not_in_task(lua_State *L) {
  push_not_in_task(L, luaL_checkstring(L, 1));
  return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* The coroutine body: fn(...) under a protected call; returns true, results / false, err, tb. */

static int task_main_k(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  if (status == LUA_OK || status == LUA_YIELD) {
    lua_pushboolean(L, 1);
    lua_replace(L, 1); /* the message handler's slot */
    return lua_gettop(L);
  }
  /* STACK: msgh, err */
  if (lua_isnil(L, 2)) { /* error(nil) must not look like success to exception() */
    lua_pushliteral(L, "(error object is a nil value)");
    lua_replace(L, 2);
  }
  lua_pushboolean(L, 0);
  lua_replace(L, 1);
  al_push_lasttb(L);
  return 3;
}

static int task_main(lua_State *L) {
  int n = lua_gettop(L);
  lua_pushcfunction(L, al_msgh);
  lua_insert(L, 1);
  int status = lua_pcallk(L, n - 1, LUA_MULTRET, 1, 0, task_main_k);
  return task_main_k(L, status, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Creation and stepping. */

static void schedule_step(lua_State *L, al_Task *t, int tidx) {
  if (t->scheduled) return;
  t->scheduled = 1;
  lua_pushvalue(L, tidx);
  al_ready_push(L, t->fut.loop);
}

/*
** Creates a task running fn(...) where fn is at fnidx followed by nargs arguments; pushes it.
** nameidx/coroidx (0: none) give the name and what get_coro() returns.
*/
static al_Task *task_new(lua_State *L, al_Loop *loop, int loopidx, int nameidx, int coroidx,
                         int fnidx, int nargs) {
  al_Task *t = lua_newuserdatauv(L, sizeof *t, AL_TASK_NUV);
  memset(t, 0, sizeof *t);
  t->fut.kind = AL_KIND_TASK;
  t->fut.magic = AL_FUTURE_MAGIC;
  t->fut.loop = loop;
  t->id = ++loop->task_counter;
  al_setmt(L, loop->st, AL_MT_TASK);
  int tidx = lua_gettop(L);
  if (loop->debug) al_debug_note_creation(L, loop, tidx);
  lua_pushvalue(L, loopidx);
  lua_setiuservalue(L, tidx, AL_FUV_LOOP);
  if (nameidx && !lua_isnil(L, nameidx)) { /* none: "Task-<id>", made when first asked for */
    lua_pushvalue(L, nameidx);
    lua_setiuservalue(L, tidx, AL_FUV_NAME);
  }
  lua_pushvalue(L, coroidx ? coroidx : fnidx);
  lua_setiuservalue(L, tidx, AL_FUV_CORO);
  lua_State *co = lua_newthread(L);
  t->co = co;
  *(al_Task **)lua_getextraspace(co) = t;
  lua_setiuservalue(L, tidx, AL_FUV_CO);
  luaL_checkstack(co, nargs + 3, "too many arguments");
  lua_pushcfunction(co, task_main);
  for (int i = 0; i <= nargs; i++) lua_pushvalue(L, fnidx + i);
  lua_xmove(L, co, nargs + 1);
  /* The loop keeps the task alive until it is done. */
  lua_pushvalue(L, tidx);
  t->slot = al_anchor(L, &loop->tasks);
  schedule_step(L, t, tidx);
  return t;
}

static int is_callable(lua_State *L, int idx) {
  if (lua_isfunction(L, idx)) return 1;
  if (!luaL_getmetafield(L, idx, "__call")) return 0;
  lua_pop(L, 1);
  return 1;
}

/*
** loop:create_task(fn, ...) runs fn(...); loop:create_task(coro [, {name=}]) runs a coroutine
** object (aio.coro). The fast path of every task creation.
*/
static int loop_create_task(lua_State *L) {
  al_Loop *loop = al_checkloop(L, 1);
  if (loop->closed) return luaL_error(L, "aloop: Event loop is closed");
  al_debug_check_thread(L, loop);
  al_State *st = loop->st;
  if (lua_isfunction(L, 2)) {
    task_new(L, loop, 1, 0, 0, 2, lua_gettop(L) - 2);
    return 1;
  }
  if (lua_istable(L, 2) && st->coro_mt_ref != LUA_NOREF && lua_getmetatable(L, 2)) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, st->coro_mt_ref);
    int is_coro = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (is_coro) { /* {fn = f, n = n, args...}; scheduled now, so never "never awaited" */
      lua_pushliteral(L, "awaited");
      if (lua_rawget(L, 2) != LUA_TNIL) /* single-use, as an asyncio coroutine */
        return luaL_error(L, "aloop: cannot reuse already awaited coroutine %s",
                          luaL_tolstring(L, 2, NULL));
      lua_pop(L, 1);
      int nameidx = 0;
      if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "name");
        nameidx = lua_gettop(L);
      }
      /* n is a Lua-visible field: checked, never trusted as a count */
      lua_pushliteral(L, "n");
      int isint = 0;
      lua_Integer n = lua_rawget(L, 2) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : -1;
      if (!isint || n < 0 || n > LUAI_MAXSTACK)
        return luaL_error(L, "aloop: malformed coroutine object (bad argument count)");
      lua_pop(L, 1);
      lua_pushliteral(L, "awaited"); /* checked first: a malformed object stays unused */
      lua_pushboolean(L, 1);
      lua_rawset(L, 2);
      luaL_checkstack(L, (int)n + 2, "too many arguments");
      lua_getfield(L, 2, "fn");
      int fnidx = lua_gettop(L);
      for (int i = 1; i <= n; i++) lua_rawgeti(L, 2, i);
      task_new(L, loop, 1, nameidx, 2, fnidx, (int)n);
      return 1;
    }
  }
  if (lua_type(L, 2) != LUA_TNONE && is_callable(L, 2)) {
    task_new(L, loop, 1, 0, 0, 2, lua_gettop(L) - 2);
    return 1;
  }
  return luaL_error(L, "aloop: a coroutine object or function expected, got %s",
                    lua_type(L, 2) == LUA_TUSERDATA ? luaL_tolstring(L, 2, NULL)
                                                   : luaL_typename(L, 2));
}

/* _set_coro_mt(mt): the metatable of coroutine objects (aio.coro), for loop:create_task. */
static int l_set_coro_mt(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  al_State *st = al_state(L);
  lua_settop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, st->coro_mt_ref);
  st->coro_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* The task is done: release the coroutine, unanchor, run callbacks. */
static void task_finished(lua_State *L, al_Task *t, int tidx) {
  lua_pushnil(L);
  lua_setiuservalue(L, tidx, AL_FUV_CO);
  lua_pushnil(L);
  lua_setiuservalue(L, tidx, AL_FUV_WAITER);
  t->co = NULL;
  al_Loop *loop = t->fut.loop;
  al_unanchor(L, &loop->tasks, t->slot);
  t->slot = 0;
}

/* Marks the task cancelled with message at msgidx (0: the pending cancel message). */
static void task_set_cancelled(lua_State *L, al_Task *t, int tidx, int msgidx) {
  if (msgidx) lua_pushvalue(L, msgidx);
  else lua_getiuservalue(L, tidx, AL_FUV_CMSG);
  int m = lua_gettop(L);
  task_finished(L, t, tidx);
  al_future_cancel(L, &t->fut, tidx, m);
  lua_pop(L, 1);
}

/* Pushes CancelledError with the task's pending cancel message. */
static void push_cancel_error(lua_State *L, al_Task *t, int tidx) {
  lua_getiuservalue(L, tidx, AL_FUV_CMSG);
  al_error_push(L, "CancelledError", t->has_cmsg ? lua_tostring(L, -1) : NULL);
  lua_remove(L, -2);
}

static int task_request_cancel(lua_State *L, al_Task *t, int tidx, int msgidx);
static void task_cancel_sleep(lua_State *L, al_Task *t, int tidx);
static void task_cancel_park(lua_State *L, al_Task *t, int tidx);

/*
** Cancels what a task waits on (at widx): a task through its own cancel (which passes the request
** on down the chain), any other future directly. 1 if that was requested.
*/
static int cancel_awaited(lua_State *L, al_Future *w, int widx, int msgidx) {
  return w->kind == AL_KIND_TASK ? task_request_cancel(L, (al_Task *)w, widx, msgidx)
                                 : al_future_cancel(L, w, widx, msgidx);
}

/*
** Step phase 1: what the coroutine resumes with. Pushes it onto the coroutine and returns how
** many values, or -1 when the task ends here (cancelled before its body ever ran).
*/
static int step_prepare(lua_State *L, al_Task *t, int tidx) {
  lua_pushnil(L);
  lua_setiuservalue(L, tidx, AL_FUV_WAITER);
  if (!t->started) {
    t->started = 1;
    if (t->must_cancel) {
      task_set_cancelled(L, t, tidx, 0);
      return -1;
    }
    return lua_gettop(t->co) - 1; /* the body's arguments */
  }
  if (t->must_cancel) { /* throw CancelledError in at the suspension point */
    t->must_cancel = 0;
    lua_pushlightuserdata(t->co, (void *)&key_throw);
    push_cancel_error(L, t, tidx);
    lua_xmove(L, t->co, 1);
    return 2;
  }
  return 0;
}

/* Step phase 2: resumes the coroutine as the loop's current task. */
static int step_resume(lua_State *L, al_Task *t, int nargs, int *nres) {
  al_Loop *loop = t->fut.loop;
  al_Task *prev = loop->current_task;
  lua_State *prev_L = loop->cur_L;
  loop->current_task = t;
  loop->cur_L = t->co;
  int status = lua_resume(t->co, L, nargs, nres);
  loop->current_task = prev;
  loop->cur_L = prev_L;
  return status;
}

/*
** Step phase 3, it yielded: sleep(0) runs it again soon, sleep(d) left it in the timer heap, a
** pending future of this loop becomes its waiter (its completion wakes the task), a finished one
** runs it again soon; any other yield is a misuse that fails the task.
*/
static void step_yielded(lua_State *L, al_Task *t, int tidx, int nres) {
  lua_State *co = t->co;
  int base = lua_gettop(L);
  if (nres == 1 && lua_touserdata(co, -1) == &key_yield0) { /* sleep(0) */
    lua_pop(co, 1);
    schedule_step(L, t, tidx);
    return;
  }
  if (nres == 1 && lua_touserdata(co, -1) == &key_sleep) { /* sleep(d): in the timer heap */
    lua_pop(co, 1);
    if (t->must_cancel) task_cancel_sleep(L, t, tidx); /* cancel() ran during this step */
    return;
  }
  if (nres == 1 && lua_touserdata(co, -1) == &key_park) { /* parked on a C object */
    lua_pop(co, 1);
    if (t->must_cancel) task_cancel_park(L, t, tidx); /* cancel() ran during this step */
    return;
  }
  if (nres == 0) lua_pushnil(L);
  else lua_xmove(co, L, 1);
  if (nres > 1) lua_pop(co, nres - 1);
  al_Future *w = al_tofuture(L, -1);
  if (!w || w->loop != t->fut.loop) {
    /* Only aloop's own suspension points yield futures; anything else is a misuse that we
       cannot resume sensibly: the task fails (to-be-closed variables are closed). */
    lua_pushfstring(L, "aloop: bad yield from a task (%s); suspend with aloop functions, "
                       "not coroutine.yield", w ? "a future of another loop"
                                                : nres == 0 ? "no value" : luaL_typename(L, -1));
    luaL_traceback(L, co, NULL, 0); /* where it yielded, for the report */
    lua_resetthread(co);
    task_finished(L, t, tidx);
    al_future_set_exception(L, &t->fut, tidx, -2, -1);
  } else if (w->state != AL_PENDING) {
    schedule_step(L, t, tidx);
  } else {
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, tidx, AL_FUV_WAITER);
    lua_pushvalue(L, tidx);
    al_future_add_callback(L, w, -2, -1);
    lua_pop(L, 1);
    if (t->must_cancel) { /* cancel() ran during this step: pass it on to what we now wait for */
      int m = 0;
      if (t->has_cmsg) {
        lua_getiuservalue(L, tidx, AL_FUV_CMSG);
        m = lua_gettop(L);
      }
      if (cancel_awaited(L, w, base + 1, m)) t->must_cancel = 0;
    }
  }
  lua_settop(L, base);
}

/* Step phase 3, the body returned or raised (STACK(co): true, results... | false, err, tb). */
static void step_returned(lua_State *L, al_Task *t, int tidx, int nres) {
  int base = lua_gettop(L);
  int ok = lua_toboolean(t->co, 1);
  lua_xmove(t->co, L, nres);
  int first = base + 2;
  if (ok) {
    if (t->must_cancel) {
      task_set_cancelled(L, t, tidx, 0);
    } else {
      task_finished(L, t, tidx);
      al_future_set_result(L, &t->fut, tidx, first, nres - 1);
    }
  } else if (al_error_is(L, first, "CancelledError")) {
    lua_getfield(L, first, "message");
    task_set_cancelled(L, t, tidx, lua_gettop(L));
  } else {
    task_finished(L, t, tidx);
    if (al_error_is(L, first, "KeyboardInterrupt")) t->fut.loop->interrupted = 1;
    al_future_set_exception(L, &t->fut, tidx, first, first + 1);
  }
  lua_settop(L, base);
}

/* Step phase 3, an error outside the protected body (out of memory, a failing __close). */
static void step_failed(lua_State *L, al_Task *t, int tidx) {
  lua_xmove(t->co, L, 1);
  task_finished(L, t, tidx);
  al_future_set_exception(L, &t->fut, tidx, -1, 0);
  lua_pop(L, 1);
}

/*
** One step (asyncio's Task.__step), in phases: prepare what to resume with, resume, then act
** on what the coroutine did (yielded, returned or raised, or failed outside its body).
*/
static void task_step(lua_State *L, al_Task *t, int tidx) {
  tidx = lua_absindex(L, tidx);
  if (t->fut.state != AL_PENDING) return;
  int nargs = step_prepare(L, t, tidx);
  if (nargs < 0) return;
  int nres = 0;
  int status = step_resume(L, t, nargs, &nres);
  if (status == LUA_YIELD) step_yielded(L, t, tidx, nres);
  else if (status == LUA_OK) step_returned(L, t, tidx, nres);
  else step_failed(L, t, tidx);
}

/*
** The task's entry reached the head of the ready queue (its userdata at tidx): a task woken by
** its sleep() timer passes once more through the queue (as asyncio's timer completes a future
** whose callback schedules the step); any other steps now.
*/
void al_task_run(lua_State *L, al_Task *t, int tidx) {
  if (t->waking) {
    t->waking = 0;
    lua_pushvalue(L, tidx);
    al_ready_push(L, t->fut.loop);
  } else {
    t->scheduled = 0;
    task_step(L, t, tidx);
  }
}

/* A future the task waits on finished (the task userdata on top, popped): it steps soon. */
void al_task_wake_waiter(lua_State *L, al_Task *t) {
  if (!t->scheduled && t->fut.state == AL_PENDING) {
    t->scheduled = 1;
    al_ready_push(L, t->fut.loop);
  } else {
    lua_pop(L, 1);
  }
}

/*
** The timer of the task's sleep() fired (the task userdata is on top, popped). Like asyncio,
** where the timer completes a future whose callback schedules the step, the task passes once
** through the ready queue in the timer's turn (waking) and steps in the next iteration.
*/
void al_task_wake_sleeper(lua_State *L, al_Task *t) {
  t->sleep_seq = 0;
  if (!t->scheduled && t->fut.state == AL_PENDING) {
    t->scheduled = t->waking = 1;
    al_ready_push(L, t->fut.loop);
  } else {
    lua_pop(L, 1);
  }
}

/* A sleeping task is cancelled: its heap entry becomes dead and its next step throws. */
static void task_cancel_sleep(lua_State *L, al_Task *t, int tidx) {
  if (t->sleep_seq) {
    t->sleep_seq = 0;
    al_timer_cancelled(L, t->fut.loop);
  }
  schedule_step(L, t, tidx);
}

/* A parked task is cancelled: the object forgets it and its next step throws. */
static void task_cancel_park(lua_State *L, al_Task *t, int tidx) {
  al_Park *p = t->park;
  if (p) {
    t->park = NULL;
    p->unpark(L, p, t);
  }
  schedule_step(L, t, tidx);
}

/* The object the task is parked on wakes it (the task userdata is not on the stack). */
void al_task_wake_parked(lua_State *L, al_Task *t) {
  t->park = NULL;
  t->park_woken = 1;
  if (t->scheduled || t->fut.state != AL_PENDING) return;
  t->scheduled = 1;
  al_anchor_push(L, &t->fut.loop->tasks, t->slot);
  al_ready_push(L, t->fut.loop);
}

/*
** Requests cancellation (asyncio's Task.cancel): cancels the awaited future if there is one,
** otherwise arranges for CancelledError to be raised at the next step. 1 if requested.
*/
static int task_request_cancel(lua_State *L, al_Task *t, int tidx, int msgidx) {
  if (t->fut.state != AL_PENDING) return 0;
  tidx = lua_absindex(L, tidx);
  t->num_cancels++;
  if (msgidx) {
    lua_pushvalue(L, msgidx);
    lua_setiuservalue(L, tidx, AL_FUV_CMSG);
    t->has_cmsg = 1;
  }
  if (t->sleep_seq) { /* in sleep(): void the timer entry and raise CancelledError now */
    t->must_cancel = 1;
    task_cancel_sleep(L, t, tidx);
    return 1;
  }
  if (t->park) { /* parked: the object forgets it, CancelledError is raised now */
    t->must_cancel = 1;
    task_cancel_park(L, t, tidx);
    return 1;
  }
  if (lua_getiuservalue(L, tidx, AL_FUV_WAITER) != LUA_TNIL) {
    int ok = cancel_awaited(L, al_tofuture(L, -1), -1, msgidx);
    lua_pop(L, 1);
    if (ok) return 1; /* the waiter's completion wakes us with CancelledError */
  } else {
    lua_pop(L, 1);
  }
  t->must_cancel = 1;
  return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Suspension points. */

/*
** Raises the value the stepper threw in (on top). A CancelledError was made on the loop's
** thread; give it the traceback of this coroutine so it shows the suspension point.
*/
static int throw_in(lua_State *L) {
  if (al_error_is(L, -1, "CancelledError")) {
    luaL_traceback(L, L, NULL, 1);
    lua_setfield(L, -2, "traceback");
  }
  return lua_error(L);
}

/*
** An aloop error arriving from an awaited future crosses a task boundary: append where it
** arrived (this coroutine's stack) to its traceback, as Python chains frames while unwinding.
*/
static void note_arrival(lua_State *L, al_Future *f, int fidx) {
  if (f->state != AL_FINISHED || !f->has_exc) return;
  lua_getiuservalue(L, fidx, AL_FUV_RESULT);
  if (lua_istable(L, -1) && lua_getfield(L, -1, "traceback") == LUA_TSTRING) {
    luaL_traceback(L, L, NULL, 1);
    lua_pushfstring(L, "%s\n(awaited here)\n%s", lua_tostring(L, -2), lua_tostring(L, -1));
    lua_setfield(L, -4, "traceback");
    lua_pop(L, 2);
  } else if (lua_istable(L, -1)) {
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* Resumed: either raise what the stepper threw in, or return the awaited future's results. */
static int await_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  int fidx = (int)ctx;
  if (lua_gettop(L) >= fidx + 2 && lua_touserdata(L, fidx + 1) == &key_throw) {
    lua_settop(L, fidx + 2);
    return throw_in(L);
  }
  lua_settop(L, fidx);
  al_Future *f = lua_touserdata(L, fidx);
  note_arrival(L, f, fidx);
  return al_future_push_result(L, f, fidx);
}

int al_await(lua_State *L, int fidx) {
  fidx = lua_absindex(L, fidx);
  al_Future *f = al_checkfuture(L, fidx);
  al_Task *t = running_task(L, f->loop->st);
  if (f->state != AL_PENDING) return al_future_push_result(L, f, fidx);
  if (!t) return not_in_task(L, "await");
  if (f == &t->fut) return luaL_error(L, "aloop: a task cannot await itself");
  if (f->loop != t->fut.loop)
    return luaL_error(L, "aloop: the awaited future is attached to a different loop");
  lua_settop(L, fidx);
  lua_pushvalue(L, fidx);
  return lua_yieldk(L, 1, fidx, await_k);
}

/* core.await_future(fut [, what]): `what` names the public call that waits, for the "not
   inside a task" error (default "await"). */
static int l_await(lua_State *L) {
  al_Future *f = al_checkfuture(L, 1);
  if (f->state == AL_PENDING && lua_type(L, 2) == LUA_TSTRING && !running_task(L, al_state(L)))
    return not_in_task(L, lua_tostring(L, 2));
  lua_settop(L, 1);
  return al_await(L, 1);
}

/* STACK: delay, args..., then the resume values: raise a thrown-in error or return the args. */
static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  int nargs = (int)ctx;
  int top = 1 + nargs;
  if (lua_gettop(L) >= top + 2 && lua_touserdata(L, top + 1) == &key_throw) {
    lua_settop(L, top + 2);
    return throw_in(L);
  }
  lua_settop(L, top);
  return nargs;
}

/*
** aio.sleep(delay, ...): suspends the task for delay seconds and returns the extra args.
** No future and no handle: the task itself waits in the timer heap (al_timer_sleep), and
** cancel() voids that entry and throws CancelledError in at once.
*/
static int l_sleep(lua_State *L) {
  double delay = luaL_checknumber(L, 1);
  if (isnan(delay)) return luaL_argerror(L, 1, "delay is NaN");
  int nargs = lua_gettop(L) - 1;
  al_Task *t = running_task(L, AL_UPSTATE(L));
  if (!t) return not_in_task(L, "sleep");
  if (delay <= 0) {
    lua_pushlightuserdata(L, (void *)&key_yield0);
    return lua_yieldk(L, 1, nargs, sleep_k);
  }
  al_Loop *loop = t->fut.loop;
  al_anchor_push(L, &loop->tasks, t->slot);
  t->sleep_seq = al_timer_sleep(L, loop, t, lua_gettop(L), al_now() + delay);
  lua_pop(L, 1);
  lua_pushlightuserdata(L, (void *)&key_sleep);
  return lua_yieldk(L, 1, nargs, sleep_k);
}

/* The running task of loop (the object's), for a C object that parks it; raises otherwise. */
al_Task *al_task_parker(lua_State *L, al_Loop *loop, const char *what) {
  al_Task *t = loop->current_task;
  if (t && t->co == L) return t;
  if (running_task(L, al_state(L)))
    luaL_error(L, "aloop.%s: the stream belongs to a different loop", what);
  not_in_task(L, what);
  return NULL;
}

/* Parks the running task t on p; the C function returns this (see internal.h). */
int al_task_park(lua_State *L, al_Task *t, al_Park *p, int top, lua_KFunction k) {
  t->park = p;
  t->park_woken = 0;
  lua_settop(L, top);
  lua_pushlightuserdata(L, (void *)&key_park);
  return lua_yieldk(L, 1, top, k);
}

int al_task_thrown(lua_State *L, int top) {
  return lua_gettop(L) >= top + 2 && lua_touserdata(L, top + 1) == &key_throw;
}

/* A parked task resumed with its arguments at 1..top: raises what the stepper threw in, if any. */
void al_task_resumed(lua_State *L, int top) {
  if (al_task_thrown(L, top)) {
    lua_settop(L, top + 2);
    throw_in(L);
  }
  lua_settop(L, top);
}

/* ---------------------------------------------------------------------------------------- */
/* Lua methods. */

static int task_cancel(lua_State *L) {
  al_Task *t = al_checktask(L, 1);
  lua_pushboolean(L, task_request_cancel(L, t, 1, lua_isnoneornil(L, 2) ? 0 : 2));
  return 1;
}

static int task_cancelling(lua_State *L) {
  lua_pushinteger(L, al_checktask(L, 1)->num_cancels);
  return 1;
}

static int task_uncancel(lua_State *L) {
  al_Task *t = al_checktask(L, 1);
  if (t->num_cancels > 0) t->num_cancels--;
  if (t->num_cancels == 0) t->must_cancel = 0; /* rescinds a pending request (Python 3.13) */
  lua_pushinteger(L, t->num_cancels);
  return 1;
}

/* Pushes the task's name (the default "Task-<id>" is made on first use). */
static void push_name(lua_State *L, al_Task *t, int tidx) {
  if (lua_getiuservalue(L, tidx, AL_FUV_NAME) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushfstring(L, "Task-%I", (lua_Integer)t->id);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, tidx, AL_FUV_NAME);
  }
}

static int task_get_name(lua_State *L) {
  push_name(L, al_checktask(L, 1), 1);
  return 1;
}

static int task_set_name(lua_State *L) {
  al_checktask(L, 1);
  luaL_checkany(L, 2);
  lua_pushstring(L, luaL_tolstring(L, 2, NULL));
  lua_setiuservalue(L, 1, AL_FUV_NAME);
  return 0;
}

static int task_get_coro(lua_State *L) {
  al_checktask(L, 1);
  lua_getiuservalue(L, 1, AL_FUV_CORO);
  return 1;
}

static int task_no_set(lua_State *L) {
  return luaL_error(L, "aloop: Task does not support set_result() or set_exception()");
}

/* "<Task pending name='Task-1'>"; in debug mode also " created at file:line". */
static int task_tostring(lua_State *L) {
  al_Task *t = al_checktask(L, 1);
  push_name(L, t, 1);
  const char *name = luaL_tolstring(L, -1, NULL);
  if (al_debug_push_creation_site(L, 1)) lua_pushfstring(L, " created at %s", lua_tostring(L, -1));
  else lua_pushliteral(L, "");
  const char *site = lua_tostring(L, -1);
  if (t->fut.state == AL_PENDING)
    lua_pushfstring(L, "<Task pending name='%s'%s>", name, site);
  else if (t->fut.state == AL_CANCELLED)
    lua_pushfstring(L, "<Task cancelled name='%s'%s>", name, site);
  else if (t->fut.has_exc) {
    lua_getiuservalue(L, 1, AL_FUV_RESULT);
    lua_pushfstring(L, "<Task finished name='%s'%s exception=%s>", name, site,
                    luaL_tolstring(L, -1, NULL));
  } else {
    lua_pushfstring(L, "<Task finished name='%s'%s>", name, site);
  }
  return 1;
}

/* aio.current_task([loop]) */
static int l_current_task(lua_State *L) {
  al_Loop *loop = lua_isnoneornil(L, 1) ? AL_UPSTATE(L)->running : al_checkloop(L, 1);
  if (!loop || !loop->current_task) {
    lua_pushnil(L);
    return 1;
  }
  al_anchor_push(L, &loop->tasks, loop->current_task->slot);
  return 1;
}

/* aio.isfuture(x): a Future or Task of aloop */
static int l_isfuture(lua_State *L) {
  lua_pushboolean(L, al_tofuture(L, 1) != NULL);
  return 1;
}

/* aio.all_tasks([loop]): a set (table keyed by task) of the loop's unfinished tasks. */
static int l_all_tasks(lua_State *L) {
  al_Loop *loop = lua_isnoneornil(L, 1) ? al_state(L)->running : al_checkloop(L, 1);
  lua_newtable(L);
  if (!loop) {
    al_State *st = al_state(L);
    if (st->default_loop_ref == LUA_NOREF) return 1;
    lua_rawgeti(L, LUA_REGISTRYINDEX, st->default_loop_ref);
    loop = lua_touserdata(L, -1);
    lua_pop(L, 1);
  }
  if (loop->tasks.ref == LUA_NOREF) return 1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, loop->tasks.ref);
  for (int i = 1; i <= loop->tasks.top; i++) {
    if (lua_rawgeti(L, -1, i) == LUA_TNIL) {
      lua_pop(L, 1);
      continue;
    }
    lua_pushboolean(L, 1);
    lua_rawset(L, -4);
  }
  lua_pop(L, 1);
  return 1;
}

static const luaL_Reg task_methods[] = {
    {"cancel", task_cancel},
    {"cancelling", task_cancelling},
    {"uncancel", task_uncancel},
    {"get_name", task_get_name},
    {"set_name", task_set_name},
    {"get_coro", task_get_coro},
    {"set_result", task_no_set},
    {"set_exception", task_no_set},
    {NULL, NULL},
};

static const luaL_Reg module_funcs[] = {
    {"_set_coro_mt", l_set_coro_mt},
    {"await_future", l_await},
    {"sleep", l_sleep},
    {"_not_in_task", l_not_in_task},
    {"current_task", l_current_task},
    {"all_tasks", l_all_tasks},
    {"isfuture", l_isfuture},
    {NULL, NULL},
};

void al_task_open(lua_State *L, int core) {
  static const luaL_Reg meta[] = {
      {"__tostring", task_tostring},
      {"__gc", al_future_gc},
      {NULL, NULL},
  };
  al_new_class(L, AL_TASK_MT, al_future_methods, meta);
  al_cachemt(L, -2, AL_MT_TASK);
  luaL_setfuncs(L, task_methods, 0);
  lua_setfield(L, core, "Task"); /* core.Task = methods */
  lua_pop(L, 1);
  lua_getfield(L, core, "Loop");
  lua_pushcfunction(L, loop_create_task);
  lua_setfield(L, -2, "create_task");
  lua_pop(L, 1);
  lua_pushvalue(L, core);
  lua_pushlightuserdata(L, al_state(L));
  luaL_setfuncs(L, module_funcs, 1); /* upvalue 1: the al_State (AL_UPSTATE) */
  lua_pop(L, 1);
}
