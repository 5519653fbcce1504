/*
** Waiter lists (waitlist.h): the FIFO of parked tasks shared by queues (queue.c) and, through
** core._WaitList, by the locks, events, conditions and semaphores of lua/aloop/sync/locks.lua.
*/
#include <stdlib.h>
#include <string.h>

#include "sync/waitlist.h"

#define WAITLIST_MAGIC 0x77616974u /* "wait" */

static al_Task **slot(al_WaitList *w, int i) { return &w->ring[(w->head + i) & (w->cap - 1)]; }

/* A parked task was cancelled: it leaves the list, the ones behind it move up. */
static void unpark(lua_State *L, al_Park *p, al_Task *t) {
  (void)L;
  al_WaitList *w = (al_WaitList *)((char *)p - offsetof(al_WaitList, park));
  int i = 0;
  while (i < w->n && *slot(w, i) != t) i++;
  if (i == w->n) return;
  for (; i + 1 < w->n; i++) *slot(w, i) = *slot(w, i + 1);
  w->n--;
}

void al_waitlist_init(al_WaitList *w) {
  memset(w, 0, sizeof *w);
  w->park.unpark = unpark;
}

void al_waitlist_free(al_WaitList *w) {
  free(w->ring);
  w->ring = NULL;
  w->cap = w->n = w->head = 0;
}

/* Room for one more: doubles the ring, unrolled from head so it stays contiguous. */
static void grow(lua_State *L, al_WaitList *w) {
  int cap = w->cap ? w->cap * 2 : 4;
  al_Task **ring = malloc(sizeof *ring * (size_t)cap);
  if (!ring) luaL_error(L, "not enough memory");
  for (int i = 0; i < w->n; i++) ring[i] = *slot(w, i);
  free(w->ring);
  w->ring = ring;
  w->cap = cap;
  w->head = 0;
}

int al_waitlist_park(lua_State *L, al_WaitList *w, al_Loop *loop, int front, const char *what,
                     int top, lua_KFunction k) {
  al_Task *t = al_task_parker(L, loop, what);
  if (w->n == w->cap) grow(L, w);
  if (front) {
    w->head = (w->head - 1) & (w->cap - 1);
    w->ring[w->head] = t;
  } else {
    *slot(w, w->n) = t;
  }
  w->n++;
  w->loop = loop;
  return al_task_park(L, t, &w->park, top, k);
}

/*
** A parked task is pending and anchored by its loop until that loop is closed; after that the
** tasks may be gone, so a closed loop's list is only emptied.
*/
int al_waitlist_wake_first(lua_State *L, al_WaitList *w) {
  if (w->n == 0) return 0;
  if (w->loop->closed) {
    w->n = 0;
    return 0;
  }
  al_Task *t = *slot(w, 0);
  w->head = (w->head + 1) & (w->cap - 1);
  w->n--;
  al_task_wake_parked(L, t);
  return 1;
}

int al_waitlist_wake_all(lua_State *L, al_WaitList *w) {
  int k = 0;
  while (al_waitlist_wake_first(L, w)) k++;
  return k;
}

/* ---------------------------------------------------------------------------------------- */
/* core._WaitList(): the list as a Lua object, for the primitives written in Lua. */

typedef struct WaitListUD {
  uint32_t magic;
  al_WaitList w;
} WaitListUD;

enum { WL_LOOP = 1 }; /* uservalue: the loop userdata its tasks belong to (kept alive) */

static al_WaitList *check_wl(lua_State *L) {
  return &AL_CHECKUDATA(L, 1, WaitListUD, WAITLIST_MAGIC, "aloop.WaitList")->w;
}

/* wl:wait(loop, front, what) -> true when woken; false, err, woken when cancelled (woken: it
   had been woken first, so the wake-up it consumed must be passed on). */
static int wl_wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status, (void)ctx;
  al_WaitList *w = &((WaitListUD *)lua_touserdata(L, 1))->w;
  if (al_task_thrown(L, 4)) {
    lua_pushboolean(L, 0);
    lua_pushvalue(L, 6); /* the error */
    lua_pushboolean(L, al_waitlist_resumed_task(w)->park_woken);
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int wl_wait(lua_State *L) {
  al_WaitList *w = check_wl(L);
  al_Loop *loop = al_checkloop(L, 2);
  int front = lua_toboolean(L, 3);
  const char *what = luaL_checkstring(L, 4);
  if (w->loop != loop) {
    if (w->n > 0) return luaL_error(L, "aloop: a waiter list belongs to one event loop");
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 1, WL_LOOP);
  }
  lua_settop(L, 4);
  return al_waitlist_park(L, w, loop, front, what, 4, wl_wait_k);
}

static int wl_wake_first(lua_State *L) {
  lua_pushboolean(L, al_waitlist_wake_first(L, check_wl(L)));
  return 1;
}

static int wl_wake_all(lua_State *L) {
  lua_pushinteger(L, al_waitlist_wake_all(L, check_wl(L)));
  return 1;
}

static int wl_len(lua_State *L) {
  lua_pushinteger(L, check_wl(L)->n);
  return 1;
}

static int wl_gc(lua_State *L) {
  al_waitlist_free(&((WaitListUD *)lua_touserdata(L, 1))->w);
  return 0;
}

static int wl_new(lua_State *L) {
  WaitListUD *u = lua_newuserdatauv(L, sizeof *u, 1);
  u->magic = WAITLIST_MAGIC;
  al_waitlist_init(&u->w);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_setmetatable(L, -2);
  return 1;
}

void al_waitlist_open(lua_State *L, int core) {
  static const luaL_Reg methods[] = {
      {"wait", wl_wait},
      {"wake_first", wl_wake_first},
      {"wake_all", wl_wake_all},
      {NULL, NULL},
  };
  lua_createtable(L, 0, 4);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, wl_len);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, wl_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcclosure(L, wl_new, 1);
  lua_setfield(L, core, "_WaitList");
}
