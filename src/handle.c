/*
** Handles (loop:call_soon) and TimerHandles (call_later/call_at), and the loop's timer heap.
** A handle's uservalues hold the function and its arguments. Timers are ordered by deadline,
** ties by scheduling order; a cancelled timer leaves the heap at once (no lazy garbage).
*/
#include <stdlib.h>

#include "internal.h"

al_Handle *al_handle_new(lua_State *L, al_Loop *loop, int fnidx, int nargs, int timer) {
  fnidx = lua_absindex(L, fnidx);
  al_Handle *h = lua_newuserdatauv(L, sizeof *h, nargs + 1);
  h->kind = AL_KIND_HANDLE;
  h->cancelled = 0;
  h->is_timer = (unsigned char)timer;
  h->nargs = nargs;
  h->loop = loop;
  h->when = 0;
  h->seq = 0;
  h->heap_idx = -1;
  luaL_setmetatable(L, timer ? AL_TIMER_MT : AL_HANDLE_MT);
  for (int i = 0; i <= nargs; i++) {
    lua_pushvalue(L, fnidx + i);
    lua_setiuservalue(L, -2, i + 1);
  }
  return h;
}

/* Drops the function and arguments so a cancelled handle holds no memory alive. */
static void handle_clear(lua_State *L, al_Handle *h, int hidx) {
  for (int i = 0; i <= h->nargs; i++) {
    lua_pushnil(L);
    lua_setiuservalue(L, hidx, i + 1);
  }
}

/*
** Runs the handle at hidx (unless cancelled) under a protected call; an error goes to the
** exception handler as "Exception in callback ...", and a KeyboardInterrupt stops the loop.
*/
void al_handle_run(lua_State *L, al_Handle *h, int hidx) {
  if (h->cancelled) return;
  int base = lua_gettop(L);
  lua_pushcfunction(L, al_msgh);
  for (int i = 0; i <= h->nargs; i++) lua_getiuservalue(L, hidx, i + 1);
  if (lua_pcall(L, h->nargs, 0, base + 1) != LUA_OK) {
    al_Loop *loop = h->loop;
    if (al_error_is(L, -1, "KeyboardInterrupt")) {
      loop->interrupted = 1;
    } else {
      /* STACK: msgh, err */
      lua_createtable(L, 0, 4);
      lua_getiuservalue(L, hidx, 1);
      lua_pushfstring(L, "Exception in callback %s", luaL_tolstring(L, -1, NULL));
      lua_setfield(L, -4, "message");
      lua_pop(L, 2);
      lua_pushvalue(L, base + 2);
      lua_setfield(L, -2, "exception");
      lua_pushvalue(L, hidx);
      lua_setfield(L, -2, "handle");
      al_push_lasttb(L);
      lua_setfield(L, -2, "traceback");
      al_report(L, loop, -1);
    }
  }
  lua_settop(L, base);
}

/* ---------------------------------------------------------------------------------------- */
/* The timer heap (binary, min at 0). */

static inline int timer_before(const al_Handle *a, const al_Handle *b) {
  return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_set(al_Loop *loop, long i, al_Handle *h) {
  loop->heap[i] = h;
  h->heap_idx = i;
}

static void heap_up(al_Loop *loop, long i) {
  al_Handle *h = loop->heap[i];
  while (i > 0) {
    long p = (i - 1) / 2;
    if (!timer_before(h, loop->heap[p])) break;
    heap_set(loop, i, loop->heap[p]);
    i = p;
  }
  heap_set(loop, i, h);
}

static void heap_down(al_Loop *loop, long i) {
  al_Handle *h = loop->heap[i];
  long n = loop->heap_n;
  for (;;) {
    long c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && timer_before(loop->heap[c + 1], loop->heap[c])) c++;
    if (!timer_before(loop->heap[c], h)) break;
    heap_set(loop, i, loop->heap[c]);
    i = c;
  }
  heap_set(loop, i, h);
}

static void heap_remove(al_Loop *loop, long i) {
  al_Handle *h = loop->heap[i];
  h->heap_idx = -1;
  loop->heap_n--;
  if (i == loop->heap_n) return;
  heap_set(loop, i, loop->heap[loop->heap_n]);
  heap_down(loop, i);
  heap_up(loop, loop->heap[i]->heap_idx);
}

/* Adds the timer at hidx to the heap and anchors its userdata. */
void al_timer_schedule(lua_State *L, al_Loop *loop, al_Handle *h, int hidx) {
  hidx = lua_absindex(L, hidx);
  if (loop->heap_n == loop->heap_cap) {
    long ncap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    al_Handle **nh = realloc(loop->heap, (size_t)ncap * sizeof *nh);
    if (!nh) luaL_error(L, "aloop: out of memory for timers");
    loop->heap = nh;
    loop->heap_cap = ncap;
  }
  h->seq = loop->timer_seq++;
  loop->heap[loop->heap_n] = h;
  h->heap_idx = loop->heap_n++;
  heap_up(loop, h->heap_idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, loop->anchors_ref);
  lua_pushvalue(L, hidx);
  lua_rawsetp(L, -2, h);
  lua_pop(L, 1);
}

/* Removes a timer from the heap and drops its anchor. */
void al_timer_unschedule(lua_State *L, al_Loop *loop, al_Handle *h) {
  if (h->heap_idx < 0) return;
  heap_remove(loop, h->heap_idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, loop->anchors_ref);
  lua_pushnil(L);
  lua_rawsetp(L, -2, h);
  lua_pop(L, 1);
}

/* Moves every timer due at `now` to the ready queue, in deadline order. */
void al_timers_collect(lua_State *L, al_Loop *loop, double now) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, loop->anchors_ref);
  int anchors = lua_gettop(L);
  while (loop->heap_n > 0 && loop->heap[0]->when <= now) {
    al_Handle *h = loop->heap[0];
    heap_remove(loop, 0);
    lua_rawgetp(L, anchors, h);
    lua_pushnil(L);
    lua_rawsetp(L, anchors, h);
    al_ready_push(L, loop);
  }
  lua_settop(L, anchors - 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Lua methods. */

static al_Handle *checkhandle(lua_State *L) {
  al_Handle *h = luaL_testudata(L, 1, AL_HANDLE_MT);
  if (!h) h = luaL_checkudata(L, 1, AL_TIMER_MT);
  return h;
}

static int handle_cancel(lua_State *L) {
  al_Handle *h = checkhandle(L);
  if (h->cancelled) return 0;
  h->cancelled = 1;
  if (h->is_timer && h->heap_idx >= 0 && !h->loop->closed) al_timer_unschedule(L, h->loop, h);
  handle_clear(L, h, 1);
  return 0;
}

static int handle_cancelled(lua_State *L) {
  lua_pushboolean(L, checkhandle(L)->cancelled);
  return 1;
}

static int handle_when(lua_State *L) {
  lua_pushnumber(L, ((al_Handle *)luaL_checkudata(L, 1, AL_TIMER_MT))->when);
  return 1;
}

static int handle_tostring(lua_State *L) {
  al_Handle *h = checkhandle(L);
  const char *what = h->is_timer ? "TimerHandle" : "Handle";
  lua_getiuservalue(L, 1, 1);
  if (h->cancelled)
    lua_pushfstring(L, "<%s cancelled>", what);
  else if (h->is_timer)
    lua_pushfstring(L, "<%s when=%f %s>", what, h->when, luaL_tolstring(L, -1, NULL));
  else
    lua_pushfstring(L, "<%s %s>", what, luaL_tolstring(L, -1, NULL));
  return 1;
}

static const luaL_Reg handle_methods[] = {
    {"cancel", handle_cancel},
    {"cancelled", handle_cancelled},
    {NULL, NULL},
};

void al_handle_open(lua_State *L) {
  for (int timer = 0; timer <= 1; timer++) {
    luaL_newmetatable(L, timer ? AL_TIMER_MT : AL_HANDLE_MT);
    luaL_newlib(L, handle_methods);
    if (timer) {
      lua_pushcfunction(L, handle_when);
      lua_setfield(L, -2, "when");
    }
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, handle_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
  }
}
