/*
** Handles (loop:call_soon) and TimerHandles (call_later/call_at), and the loop's timer heap.
** A handle's uservalues hold the function and its arguments. Timers are ordered by deadline,
** ties by scheduling order; a cancelled timer leaves the heap lazily (see the heap below).
*/
#include <stdlib.h>

#include "core/internal.h"

al_Handle *al_handle_new(lua_State *L, al_Loop *loop, int fnidx, int nargs, int timer) {
  fnidx = lua_absindex(L, fnidx);
  al_Handle *h = lua_newuserdatauv(L, sizeof *h, nargs + 1);
  h->kind = AL_KIND_HANDLE;
  h->magic = AL_HANDLE_MAGIC;
  h->cancelled = 0;
  h->is_timer = (unsigned char)timer;
  h->nargs = nargs;
  h->loop = loop;
  h->in_heap = 0;
  h->when = 0;
  al_setmt(L, loop->st, timer ? AL_MT_TIMER : AL_MT_HANDLE);
  if (loop->debug) al_debug_note_creation(L, loop, -1);
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

/* ---------------------------------------------------------------------------------------- */
/*
** The timer heap: binary, min at 0, entries carry (when, seq) so sifting never touches the
** handles. A cancelled timer stays until it reaches the top or until cancelled ones are the
** majority, when the heap is rebuilt without them (as asyncio does).
*/

/* A cancelled TimerHandle, or the entry of a sleep() that was cancelled. */
static inline int entry_dead(const al_HeapEntry *e) {
  return e->task ? e->task->sleep_seq != e->seq : e->h->cancelled;
}

static inline int entry_before(const al_HeapEntry *a, const al_HeapEntry *b) {
  return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_up(al_HeapEntry *heap, long i) {
  al_HeapEntry e = heap[i];
  while (i > 0) {
    long p = (i - 1) / 2;
    if (!entry_before(&e, &heap[p])) break;
    heap[i] = heap[p];
    i = p;
  }
  heap[i] = e;
}

static void heap_down(al_HeapEntry *heap, long n, long i) {
  al_HeapEntry e = heap[i];
  for (;;) {
    long c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && entry_before(&heap[c + 1], &heap[c])) c++;
    if (!entry_before(&heap[c], &e)) break;
    heap[i] = heap[c];
    i = c;
  }
  heap[i] = e;
}

/* Pops the top entry, returning it. */
static al_HeapEntry heap_pop(al_Loop *loop) {
  al_HeapEntry top = loop->heap[0];
  if (--loop->heap_n > 0) {
    loop->heap[0] = loop->heap[loop->heap_n];
    heap_down(loop->heap, loop->heap_n, 0);
  }
  if (!top.task) top.h->in_heap = 0;
  return top;
}

/* Makes room for one more heap entry. */
static void heap_reserve(lua_State *L, al_Loop *loop) {
  if (loop->heap_n < loop->heap_cap) return;
  long ncap = loop->heap_cap ? loop->heap_cap * 2 : 64;
  al_HeapEntry *nh = realloc(loop->heap, (size_t)ncap * sizeof *nh);
  if (!nh) luaL_error(L, "aloop: out of memory for timers");
  loop->heap = nh;
  loop->heap_cap = ncap;
}

/* Adds the timer at hidx (h->when set) to the heap and anchors its userdata. */
void al_timer_schedule(lua_State *L, al_Loop *loop, al_Handle *h, int hidx) {
  heap_reserve(L, loop);
  lua_pushvalue(L, hidx);
  al_HeapEntry *e = &loop->heap[loop->heap_n];
  e->when = h->when;
  e->seq = loop->timer_seq++;
  e->h = h;
  e->task = NULL;
  e->slot = al_anchor(L, &loop->timers);
  h->in_heap = 1;
  heap_up(loop->heap, loop->heap_n++);
}

/*
** Puts the task at tidx in the heap until `when` and returns the entry's seq (the task keeps it
** in sleep_seq while the entry is live): al_timers_collect wakes it (al_task_wake_sleeper).
*/
uint64_t al_timer_sleep(lua_State *L, al_Loop *loop, al_Task *t, int tidx, double when) {
  heap_reserve(L, loop);
  lua_pushvalue(L, tidx);
  al_HeapEntry *e = &loop->heap[loop->heap_n];
  e->when = when;
  e->seq = loop->timer_seq++;
  e->h = NULL;
  e->task = t;
  e->slot = al_anchor(L, &loop->timers);
  uint64_t seq = e->seq;
  heap_up(loop->heap, loop->heap_n++);
  return seq;
}

/* A timer still in the heap was cancelled: rebuild the heap when most entries are dead. */
void al_timer_cancelled(lua_State *L, al_Loop *loop) {
  loop->heap_cancelled++;
  if (loop->heap_cancelled < 64 || loop->heap_cancelled * 2 < loop->heap_n) return;
  long j = 0;
  for (long i = 0; i < loop->heap_n; i++) {
    al_HeapEntry *e = &loop->heap[i];
    if (entry_dead(e)) {
      if (!e->task) e->h->in_heap = 0;
      al_unanchor(L, &loop->timers, e->slot);
    } else {
      loop->heap[j++] = *e;
    }
  }
  loop->heap_n = j;
  loop->heap_cancelled = 0;
  for (long i = j / 2 - 1; i >= 0; i--) heap_down(loop->heap, j, i);
}

/* Drops cancelled timers from the top; returns the earliest live deadline, or -1. */
double al_timer_next(lua_State *L, al_Loop *loop) {
  while (loop->heap_n > 0 && entry_dead(&loop->heap[0])) {
    al_HeapEntry e = heap_pop(loop);
    loop->heap_cancelled--;
    al_unanchor(L, &loop->timers, e.slot);
  }
  return loop->heap_n > 0 ? loop->heap[0].when : -1;
}

/* Moves every live timer due at `now` to the ready queue, in deadline order. */
void al_timers_collect(lua_State *L, al_Loop *loop, double now) {
  while (loop->heap_n > 0 && loop->heap[0].when <= now) {
    al_HeapEntry e = heap_pop(loop);
    if (entry_dead(&e)) {
      loop->heap_cancelled--;
      al_unanchor(L, &loop->timers, e.slot);
      continue;
    }
    al_anchor_push(L, &loop->timers, e.slot);
    al_unanchor(L, &loop->timers, e.slot);
    if (e.task) al_task_wake_sleeper(L, e.task);
    else al_ready_push(L, loop);
  }
}

/* ---------------------------------------------------------------------------------------- */
/* Lua methods. */

static al_Handle *checkhandle(lua_State *L) {
  return AL_CHECKUDATA(L, 1, al_Handle, AL_HANDLE_MAGIC, "aloop Handle");
}

static int handle_cancel(lua_State *L) {
  al_Handle *h = checkhandle(L);
  if (h->cancelled) return 0;
  h->cancelled = 1;
  if (h->in_heap && !h->loop->closed) al_timer_cancelled(L, h->loop);
  handle_clear(L, h, 1);
  return 0;
}

static int handle_cancelled(lua_State *L) {
  lua_pushboolean(L, checkhandle(L)->cancelled);
  return 1;
}

static int handle_when(lua_State *L) {
  lua_pushnumber(L, checkhandle(L)->when);
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

static const luaL_Reg handle_meta[] = {
    {"__tostring", handle_tostring},
    {NULL, NULL},
};

void al_handle_open(lua_State *L, int core) {
  (void)core; /* metatables only */
  for (int timer = 0; timer <= 1; timer++) {
    al_new_class(L, timer ? AL_TIMER_MT : AL_HANDLE_MT, handle_methods, handle_meta);
    al_cachemt(L, -2, timer ? AL_MT_TIMER : AL_MT_HANDLE);
    if (timer) {
      lua_pushcfunction(L, handle_when);
      lua_setfield(L, -2, "when");
    }
    lua_pop(L, 2);
  }
}
