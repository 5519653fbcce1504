/*
** Futures: C userdata so hosts can create and complete them from C. Results are Lua multiple
** values; done callbacks run through the ready queue (a waiting task is woken directly). An
** exception nobody retrieved is reported when the future is collected.
*/
#include "core/internal.h"

/* A Future or Task, by size and magic number (see al_toloop), or NULL. */
/* A future or a task (an al_Task starts with its al_Future): al_toudata for two sizes. */
al_Future *al_tofuture(lua_State *L, int idx) {
  al_Future *f = lua_touserdata(L, idx);
  if (!f) return NULL;
  size_t len = lua_rawlen(L, idx);
  if (len != sizeof(al_Future) && len != sizeof(al_Task)) return NULL;
  return f->magic == AL_FUTURE_MAGIC ? f : NULL;
}

al_Future *al_checkfuture(lua_State *L, int idx) {
  al_Future *f = al_tofuture(L, idx);
  if (!f) luaL_typeerror(L, idx, "aloop Future or Task");
  return f;
}

al_Future *al_future_new(lua_State *L, al_Loop *loop, int loopidx) {
  loopidx = lua_absindex(L, loopidx);
  al_Future *f = lua_newuserdatauv(L, sizeof *f, AL_FUTURE_NUV);
  f->kind = AL_KIND_FUTURE;
  f->magic = AL_FUTURE_MAGIC;
  f->state = AL_PENDING;
  f->has_exc = f->log_exc = f->multi = f->cancel_hook = 0;
  f->nres = f->ncb = 0;
  f->loop = loop;
  al_setmt(L, loop->st, AL_MT_FUTURE);
  if (loop->debug) al_debug_note_creation(L, loop, -1);
  lua_pushvalue(L, loopidx);
  lua_setiuservalue(L, -2, AL_FUV_LOOP);
  return f;
}

/* A Future that is not a Task (set_result & co. are for plain futures only). */
static al_Future *checkplain(lua_State *L, int idx) {
  al_Future *f = al_checkfuture(L, idx);
  if (f->kind != AL_KIND_FUTURE) luaL_typeerror(L, idx, "aloop Future (not a Task)");
  return f;
}

/* Queues the done callbacks of the future at fidx and forgets them. */
static void schedule_callbacks(lua_State *L, al_Future *f, int fidx) {
  if (f->ncb == 0) return;
  al_Loop *loop = f->loop;
  int n = f->ncb;
  f->ncb = 0;
  lua_getiuservalue(L, fidx, AL_FUV_CBS);
  lua_pushnil(L);
  lua_setiuservalue(L, fidx, AL_FUV_CBS);
  if (loop->closed) {
    lua_pop(L, 1);
    return;
  }
  int cbs = lua_gettop(L);
  for (int i = 1; i <= n; i++) {
    if (n == 1) lua_pushvalue(L, cbs);
    else lua_rawgeti(L, cbs, i);
    al_Task *t = al_totask(L, -1);
    if (t) { /* a task waiting on this future: wake it */
      al_task_wake_waiter(L, t);
    } else { /* fn(fut) in a later iteration */
      lua_pushvalue(L, fidx);
      al_handle_new(L, loop, -2, 1, 0);
      al_ready_push(L, loop);
      lua_pop(L, 2);
    }
  }
  lua_settop(L, cbs - 1);
}

void al_future_set_result(lua_State *L, al_Future *f, int fidx, int first, int n) {
  fidx = lua_absindex(L, fidx);
  first = lua_absindex(L, first);
  f->cancel_hook = 0;
  f->nres = n;
  f->multi = n > 1;
  if (n == 1) {
    lua_pushvalue(L, first);
  } else if (n > 1) {
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
      lua_pushvalue(L, first + i);
      lua_rawseti(L, -2, i + 1);
    }
  } else {
    lua_pushnil(L);
  }
  lua_setiuservalue(L, fidx, AL_FUV_RESULT);
  f->state = AL_FINISHED;
  schedule_callbacks(L, f, fidx);
}

/*
** A task failed with the string error at eidx, raised where the traceback at tbidx says: kept in
** the registry (ALOOP_TASK_ERROR_KEY) for the interpreter's report of an uncaught error. The same
** error passed on by the tasks that awaited it keeps the first (innermost) traceback.
*/
static void record_task_error(lua_State *L, int eidx, int tbidx) {
  eidx = lua_absindex(L, eidx);
  tbidx = lua_absindex(L, tbidx);
  if (lua_getfield(L, LUA_REGISTRYINDEX, ALOOP_TASK_ERROR_KEY) == LUA_TTABLE) {
    lua_rawgeti(L, -1, 1);
    int same = lua_rawequal(L, -1, eidx);
    lua_pop(L, 2);
    if (same) return;
  } else {
    lua_pop(L, 1);
  }
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, eidx);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, tbidx);
  lua_rawseti(L, -2, 2);
  lua_setfield(L, LUA_REGISTRYINDEX, ALOOP_TASK_ERROR_KEY);
}

/* Finishes with the error at eidx; tbidx (or 0) is a traceback string for reports. */
void al_future_set_exception(lua_State *L, al_Future *f, int fidx, int eidx, int tbidx) {
  fidx = lua_absindex(L, fidx);
  f->cancel_hook = 0;
  if (tbidx && lua_type(L, eidx) == LUA_TSTRING) record_task_error(L, eidx, tbidx);
  lua_pushvalue(L, eidx);
  lua_setiuservalue(L, fidx, AL_FUV_RESULT);
  if (tbidx) lua_pushvalue(L, tbidx);
  else lua_pushnil(L);
  lua_setiuservalue(L, fidx, AL_FUV_TB);
  f->has_exc = 1;
  f->log_exc = 1;
  f->state = AL_FINISHED;
  schedule_callbacks(L, f, fidx);
}

/*
** A cancel hook (aggregates like gather): cancel() calls hook(fut, msg) instead of cancelling,
** and the hook decides (it cancels the children; the future finishes when they do). A hook
** that raises is reported and counts as "not cancelled".
*/
static int call_cancel_hook(lua_State *L, al_Future *f, int fidx, int msgidx) {
  int top = lua_gettop(L);
  lua_pushcfunction(L, al_msgh);
  lua_getiuservalue(L, fidx, AL_FUV_RESULT);
  lua_pushvalue(L, fidx);
  if (msgidx) lua_pushvalue(L, msgidx);
  else lua_pushnil(L);
  int ok = 0;
  if (lua_pcall(L, 2, 1, top + 1) == LUA_OK) {
    ok = lua_toboolean(L, -1);
  } else {
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, "Exception in a future's cancel hook");
    lua_setfield(L, -2, "message");
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "exception");
    al_report(L, f->loop, -1);
  }
  lua_settop(L, top);
  return ok;
}

/* Plain future cancel (tasks have their own): 1 if it was pending. msgidx may be 0. */
int al_future_cancel(lua_State *L, al_Future *f, int fidx, int msgidx) {
  if (f->state != AL_PENDING) return 0;
  fidx = lua_absindex(L, fidx);
  if (msgidx) msgidx = lua_absindex(L, msgidx);
  if (f->cancel_hook) return call_cancel_hook(L, f, fidx, msgidx);
  if (msgidx) lua_pushvalue(L, msgidx);
  else lua_pushnil(L);
  lua_setiuservalue(L, fidx, AL_FUV_RESULT);
  f->state = AL_CANCELLED;
  schedule_callbacks(L, f, fidx);
  return 1;
}

void al_future_add_callback(lua_State *L, al_Future *f, int fidx, int cbidx) {
  fidx = lua_absindex(L, fidx);
  cbidx = lua_absindex(L, cbidx);
  if (f->ncb == 0) {
    lua_pushvalue(L, cbidx);
    lua_setiuservalue(L, fidx, AL_FUV_CBS);
  } else if (f->ncb == 1) {
    lua_createtable(L, 4, 0);
    lua_getiuservalue(L, fidx, AL_FUV_CBS);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, cbidx);
    lua_rawseti(L, -2, 2);
    lua_setiuservalue(L, fidx, AL_FUV_CBS);
  } else {
    lua_getiuservalue(L, fidx, AL_FUV_CBS);
    lua_pushvalue(L, cbidx);
    lua_rawseti(L, -2, f->ncb + 1);
    lua_pop(L, 1);
  }
  f->ncb++;
}

/* Pushes CancelledError(msg) where msg is the future's cancel message. */
static void push_cancelled(lua_State *L, int fidx) {
  lua_getiuservalue(L, fidx, AL_FUV_RESULT);
  const char *msg = lua_tostring(L, -1);
  al_error_push(L, "CancelledError", msg);
  lua_remove(L, -2);
}

/* Pushes the results of a finished future, or raises its exception / CancelledError. */
int al_future_push_result(lua_State *L, al_Future *f, int fidx) {
  fidx = lua_absindex(L, fidx);
  if (f->state == AL_CANCELLED) {
    push_cancelled(L, fidx);
    return lua_error(L);
  }
  if (f->state != AL_FINISHED) return al_error_raise(L, "InvalidStateError", "Result is not ready.");
  lua_getiuservalue(L, fidx, AL_FUV_RESULT);
  if (f->has_exc) {
    f->log_exc = 0;
    return lua_error(L);
  }
  if (!f->multi) {
    if (f->nres == 0) lua_pop(L, 1);
    return f->nres;
  }
  int n = f->nres;
  luaL_checkstack(L, n, "too many results");
  int t = lua_gettop(L);
  for (int i = 1; i <= n; i++) lua_rawgeti(L, t, i);
  lua_remove(L, t);
  return n;
}

/* ---------------------------------------------------------------------------------------- */
/* Lua methods (shared by Task, which adds its own). */

static int fut_result(lua_State *L) {
  al_Future *f = al_checkfuture(L, 1);
  return al_future_push_result(L, f, 1);
}

static int fut_exception(lua_State *L) {
  al_Future *f = al_checkfuture(L, 1);
  if (f->state == AL_CANCELLED) {
    push_cancelled(L, 1);
    return lua_error(L);
  }
  if (f->state != AL_FINISHED) return al_error_raise(L, "InvalidStateError", "Exception is not set.");
  f->log_exc = 0;
  if (f->has_exc) lua_getiuservalue(L, 1, AL_FUV_RESULT);
  else lua_pushnil(L);
  return 1;
}

static int fut_done(lua_State *L) {
  lua_pushboolean(L, al_checkfuture(L, 1)->state != AL_PENDING);
  return 1;
}

static int fut_cancelled(lua_State *L) {
  lua_pushboolean(L, al_checkfuture(L, 1)->state == AL_CANCELLED);
  return 1;
}

static int fut_cancel(lua_State *L) {
  al_Future *f = al_checkfuture(L, 1);
  lua_pushboolean(L, al_future_cancel(L, f, 1, lua_isnoneornil(L, 2) ? 0 : 2));
  return 1;
}

static int fut_add_done_callback(lua_State *L) {
  al_Future *f = al_checkfuture(L, 1);
  if (!lua_isfunction(L, 2) && !luaL_getmetafield(L, 2, "__call"))
    return luaL_typeerror(L, 2, "callable");
  if (f->state != AL_PENDING) { /* already done: call soon */
    if (f->loop->closed) return luaL_error(L, "aloop: Event loop is closed");
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 1);
    al_handle_new(L, f->loop, -2, 1, 0);
    al_ready_push(L, f->loop);
    return 0;
  }
  al_future_add_callback(L, f, 1, 2);
  return 0;
}

/* Removes every registration of fn; returns how many were removed. */
static int fut_remove_done_callback(lua_State *L) {
  al_Future *f = al_checkfuture(L, 1);
  luaL_checkany(L, 2);
  int removed = 0;
  if (f->ncb == 1) {
    lua_getiuservalue(L, 1, AL_FUV_CBS);
    if (lua_rawequal(L, -1, 2)) {
      lua_pushnil(L);
      lua_setiuservalue(L, 1, AL_FUV_CBS);
      f->ncb = 0;
      removed = 1;
    }
  } else if (f->ncb > 1) {
    lua_getiuservalue(L, 1, AL_FUV_CBS);
    int t = lua_gettop(L), j = 0;
    for (int i = 1; i <= f->ncb; i++) {
      lua_rawgeti(L, t, i);
      if (lua_rawequal(L, -1, 2)) {
        removed++;
        lua_pop(L, 1);
      } else {
        lua_rawseti(L, t, ++j);
      }
    }
    for (int i = j + 1; i <= f->ncb; i++) {
      lua_pushnil(L);
      lua_rawseti(L, t, i);
    }
    f->ncb = j;
    if (j == 1) { /* back to the single-callback form */
      lua_rawgeti(L, t, 1);
      lua_setiuservalue(L, 1, AL_FUV_CBS);
    } else if (j == 0) {
      lua_pushnil(L);
      lua_setiuservalue(L, 1, AL_FUV_CBS);
    }
  }
  lua_pushinteger(L, removed);
  return 1;
}

static int fut_set_result(lua_State *L) {
  al_Future *f = checkplain(L, 1);
  if (f->state != AL_PENDING) return al_error_raise(L, "InvalidStateError", "invalid state: %s",
                                                  f->state == AL_CANCELLED ? "cancelled" : "finished");
  if (f->loop->closed) return luaL_error(L, "aloop: Event loop is closed");
  al_future_set_result(L, f, 1, 2, lua_gettop(L) - 1);
  return 0;
}

static int fut_set_exception(lua_State *L) {
  al_Future *f = checkplain(L, 1);
  if (lua_isnoneornil(L, 2)) return luaL_argerror(L, 2, "an error value expected");
  if (f->state != AL_PENDING) return al_error_raise(L, "InvalidStateError", "invalid state: %s",
                                                  f->state == AL_CANCELLED ? "cancelled" : "finished");
  if (f->loop->closed) return luaL_error(L, "aloop: Event loop is closed");
  lua_settop(L, 2);
  int tb = 0;
  if (lua_istable(L, 2) && lua_getfield(L, 2, "traceback") == LUA_TSTRING) tb = 3;
  al_future_set_exception(L, f, 1, 2, tb);
  return 0;
}

/* core._set_cancel_hook(fut, fn): see call_cancel_hook. */
static int l_set_cancel_hook(lua_State *L) {
  al_Future *f = checkplain(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (f->state != AL_PENDING) return luaL_error(L, "aloop: the future is already done");
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, 1, AL_FUV_RESULT);
  f->cancel_hook = 1;
  return 0;
}

/* core._cancel_now(fut, msg): cancels, bypassing the cancel hook. */
static int l_cancel_now(lua_State *L) {
  al_Future *f = checkplain(L, 1);
  f->cancel_hook = 0;
  lua_pushboolean(L, al_future_cancel(L, f, 1, lua_isnoneornil(L, 2) ? 0 : 2));
  return 1;
}

static int fut_get_loop(lua_State *L) {
  al_checkfuture(L, 1);
  lua_getiuservalue(L, 1, AL_FUV_LOOP);
  return 1;
}

/* fut:await(): suspends the current task until the future is done. */
static int fut_await(lua_State *L) {
  al_checkfuture(L, 1);
  lua_settop(L, 1);
  return al_await(L, 1);
}

static const char *state_name(al_Future *f) {
  return f->state == AL_PENDING ? "pending" : f->state == AL_CANCELLED ? "cancelled" : "finished";
}

static int fut_tostring(lua_State *L) {
  al_Future *f = al_checkfuture(L, 1);
  lua_pushfstring(L, "<Future %s %p>", state_name(f), (void *)f);
  return 1;
}

/* An exception nobody asked for is reported instead of silently dropped. */
int al_future_gc(lua_State *L) {
  al_Future *f = lua_touserdata(L, 1);
  if (!f->log_exc) return 0;
  f->log_exc = 0;
  lua_getiuservalue(L, 1, AL_FUV_LOOP);
  al_Loop *loop = lua_touserdata(L, -1);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, f->kind == AL_KIND_TASK ? "Task exception was never retrieved"
                                            : "Future exception was never retrieved");
  lua_setfield(L, -2, "message");
  lua_getiuservalue(L, 1, AL_FUV_RESULT);
  lua_setfield(L, -2, "exception");
  lua_getiuservalue(L, 1, AL_FUV_TB);
  lua_setfield(L, -2, "traceback");
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, f->kind == AL_KIND_TASK ? "task" : "future");
  if (al_debug_push_creation(L, 1)) lua_setfield(L, -2, "source_traceback");
  al_report(L, loop && !loop->closed ? loop : NULL, -1);
  return 0;
}

const luaL_Reg al_future_methods[] = {
    {"result", fut_result},
    {"exception", fut_exception},
    {"done", fut_done},
    {"cancelled", fut_cancelled},
    {"add_done_callback", fut_add_done_callback},
    {"remove_done_callback", fut_remove_done_callback},
    {"get_loop", fut_get_loop},
    {"await", fut_await},
    {NULL, NULL},
};

static const luaL_Reg future_only[] = {
    {"cancel", fut_cancel},
    {"set_result", fut_set_result},
    {"set_exception", fut_set_exception},
    {NULL, NULL},
};

static const luaL_Reg future_meta[] = {
    {"__tostring", fut_tostring},
    {"__gc", al_future_gc},
    {NULL, NULL},
};

void al_future_open(lua_State *L, int core) {
  al_new_class(L, AL_FUTURE_MT, al_future_methods, future_meta);
  al_cachemt(L, -2, AL_MT_FUTURE);
  luaL_setfuncs(L, future_only, 0);
  lua_setfield(L, core, "Future"); /* core.Future = methods */
  lua_pop(L, 1);
  lua_pushcfunction(L, l_set_cancel_hook);
  lua_setfield(L, core, "_set_cancel_hook");
  lua_pushcfunction(L, l_cancel_now);
  lua_setfield(L, core, "_cancel_now");
}
