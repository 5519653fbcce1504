/*
** The queues' methods (API.md §8), in C: counts, storage of the FIFO and LIFO kinds, the bound
** loop, and the getters/putters/joiners waiting on waiter lists (waitlist.h), so put and get
** are one C call each. lua/aloop/sync/queues.lua makes the public objects: a Lua table holding
** this core at [1] (methods take that table) and `maxsize`; PriorityQueue keeps its heap in Lua
** and passes store/fetch functions that these methods call.
** As in asyncio, put/get wake the first waiter on the other side, which then takes its turn; a
** waiter woken for nothing goes back to the front of the line, and one cancelled after its
** wake-up passes the wake-up on, so no item and no slot is ever lost.
*/
#include <string.h>

#include "sync/waitlist.h"

#define QUEUE_MAGIC 0x71756575u /* "queu" */

enum { Q_FIFO, Q_LIFO, Q_CUSTOM };

typedef struct al_Queue {
  uint32_t magic;
  unsigned char kind, shutdown;
  lua_Number maxsize;  /* <= 0: unbounded */
  lua_Integer n;       /* items held */
  lua_Integer unfinished; /* items put and not yet task_done() */
  lua_Integer head;    /* FIFO: the items are items[head .. head + n - 1] */
  al_Loop *loop;       /* bound to the first running loop that used it, or NULL */
  al_WaitList getters, putters, joiners;
} al_Queue;

enum { Q_ITEMS = 1, /* table of the FIFO/LIFO items */
       Q_LOOP,      /* the bound loop's userdata (kept alive for the waiter lists) */
       Q_STORE,     /* custom kind: store(self, item, n) */
       Q_FETCH,     /* custom kind: fetch(self, n) -> item */
       Q_N = Q_FETCH };

/*
** The core of the queue `self` at 1: pushed at top + 1 (the stack is cut to top first) so the
** methods and their continuations find it at a fixed index.
*/
static al_Queue *self_queue(lua_State *L, int top, const char *what) {
  lua_settop(L, top);
  al_Queue *q = NULL;
  if (lua_type(L, 1) == LUA_TTABLE && lua_rawgeti(L, 1, 1) == LUA_TUSERDATA)
    q = AL_TOUDATA(L, -1, al_Queue, QUEUE_MAGIC);
  if (!q) luaL_error(L, "aloop.Queue.%s: call it on a queue (q:%s(...))", what, what);
  return q;
}

/*
** The loop the queue works on: bound to the first running loop that uses it; any other running
** loop is an error. Outside a running loop: NULL, or "not inside a task" when `suspending`.
*/
static al_Loop *bind(lua_State *L, al_Queue *q, int uidx, const char *what, int suspending) {
  al_State *st = AL_UPSTATE(L);
  al_Loop *loop = st->running;
  if (loop == q->loop && loop) return loop;
  if (!loop) {
    if (suspending) al_not_in_task(L, what);
    return NULL;
  }
  if (q->loop) {
    luaL_tolstring(L, 1, NULL);
    luaL_error(L, "aloop.%s: %s is bound to a different event loop (a primitive belongs to the "
                  "first loop that uses it)", what, lua_tostring(L, -1));
  }
  q->loop = loop;
  al_push_running(L, st);
  lua_setiuservalue(L, uidx, Q_LOOP);
  return loop;
}

static int is_full(const al_Queue *q) { return q->maxsize > 0 && (lua_Number)q->n >= q->maxsize; }

/* Stores the value at idx (the queue at 1, its core at uidx) and wakes the first getter. */
static void push(lua_State *L, al_Queue *q, int uidx, int idx) {
  if (q->kind == Q_CUSTOM) {
    lua_getiuservalue(L, uidx, Q_STORE);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, idx);
    lua_pushinteger(L, q->n);
    lua_call(L, 3, 0);
  } else {
    lua_getiuservalue(L, uidx, Q_ITEMS);
    lua_pushvalue(L, idx);
    lua_rawseti(L, -2, q->kind == Q_FIFO ? q->head + q->n : q->n + 1);
    lua_pop(L, 1);
  }
  q->n++;
  q->unfinished++;
  al_waitlist_wake_first(L, &q->getters);
}

/* Pushes the next item (there is one), drops it from the queue, wakes the first putter. */
static int take(lua_State *L, al_Queue *q, int uidx) {
  if (q->kind == Q_CUSTOM) {
    lua_getiuservalue(L, uidx, Q_FETCH);
    lua_pushvalue(L, 1);
    lua_pushinteger(L, q->n);
    lua_call(L, 2, 1);
  } else {
    lua_getiuservalue(L, uidx, Q_ITEMS);
    lua_Integer i = q->kind == Q_FIFO ? q->head : q->n;
    lua_rawgeti(L, -1, i);
    lua_pushnil(L);
    lua_rawseti(L, -3, i);
    lua_remove(L, -2);
    if (q->kind == Q_FIFO) q->head = q->n == 1 ? 1 : q->head + 1;
  }
  q->n--;
  al_waitlist_wake_first(L, &q->putters);
  return 1;
}

static int shut_down(lua_State *L, int empty) {
  return al_error_raise(L, "QueueShutDown", empty ? "the queue is shut down and empty"
                                                  : "the queue is shut down");
}

/* ---------------------------------------------------------------------------------------- */
/* put, get and their continuations (self at 1, put's item at 2, the core after them). */

static int put_try(lua_State *L, al_Queue *q, int again);

static int put_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status, (void)ctx;
  al_Queue *q = lua_touserdata(L, 3);
  if (al_task_thrown(L, 3)) {
    if (!is_full(q) && q->loop->current_task->park_woken) /* pass the free slot on */
      al_waitlist_wake_first(L, &q->putters);
    al_task_resumed(L, 3);
  }
  lua_settop(L, 3);
  return put_try(L, q, 1);
}

static int put_try(lua_State *L, al_Queue *q, int again) {
  if (is_full(q) && !q->shutdown)
    return al_waitlist_park(L, &q->putters, q->loop, again, "Queue.put", 3, put_k);
  if (q->shutdown) return shut_down(L, 0);
  push(L, q, 3, 2);
  return 0;
}

static int q_put(lua_State *L) {
  al_Queue *q = self_queue(L, 2, "put");
  bind(L, q, 3, "Queue.put", 1);
  return put_try(L, q, 0);
}

static int get_try(lua_State *L, al_Queue *q, int again);

static int get_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status, (void)ctx;
  al_Queue *q = lua_touserdata(L, 2);
  if (al_task_thrown(L, 2)) {
    if (q->n > 0 && q->loop->current_task->park_woken) /* pass the item on */
      al_waitlist_wake_first(L, &q->getters);
    al_task_resumed(L, 2);
  }
  lua_settop(L, 2);
  return get_try(L, q, 1);
}

static int get_try(lua_State *L, al_Queue *q, int again) {
  if (q->n > 0) return take(L, q, 2);
  if (q->shutdown) return shut_down(L, 1);
  return al_waitlist_park(L, &q->getters, q->loop, again, "Queue.get", 2, get_k);
}

static int q_get(lua_State *L) {
  al_Queue *q = self_queue(L, 1, "get");
  bind(L, q, 2, "Queue.get", 1);
  return get_try(L, q, 0);
}

static int q_put_nowait(lua_State *L) {
  al_Queue *q = self_queue(L, 2, "put_nowait");
  if (q->shutdown) return shut_down(L, 0);
  if (is_full(q)) return al_error_raise(L, "QueueFull", "the queue is full");
  push(L, q, 3, 2);
  return 0;
}

static int q_get_nowait(lua_State *L) {
  al_Queue *q = self_queue(L, 1, "get_nowait");
  if (q->n == 0) {
    if (q->shutdown) return shut_down(L, 1);
    return al_error_raise(L, "QueueEmpty", "the queue is empty");
  }
  return take(L, q, 2);
}

/* ---------------------------------------------------------------------------------------- */
/* Counts, join, shutdown. */

static int q_qsize(lua_State *L) {
  lua_pushinteger(L, self_queue(L, 1, "qsize")->n);
  return 1;
}

static int q_empty(lua_State *L) {
  lua_pushboolean(L, self_queue(L, 1, "empty")->n == 0);
  return 1;
}

static int q_full(lua_State *L) {
  lua_pushboolean(L, is_full(self_queue(L, 1, "full")));
  return 1;
}

static int q_task_done(lua_State *L) {
  al_Queue *q = self_queue(L, 1, "task_done");
  if (q->unfinished <= 0)
    return luaL_error(L, "aloop.Queue.task_done: called more times than there were items put");
  if (--q->unfinished == 0) al_waitlist_wake_all(L, &q->joiners);
  return 0;
}

static int join_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status, (void)ctx;
  al_task_resumed(L, 2);
  return 0;
}

/* Waits until every item put so far has had its task_done(). */
static int q_join(lua_State *L) {
  al_Queue *q = self_queue(L, 1, "join");
  al_Loop *loop = bind(L, q, 2, "Queue.join", 1);
  if (q->unfinished == 0) return 0;
  return al_waitlist_park(L, &q->joiners, loop, 0, "Queue.join", 2, join_k);
}

/*
** Python 3.13: put raises QueueShutDown from now on; get does once the queue is empty (at once
** with `immediate`, which also drops the items and counts them as done). Every waiting put/get
** wakes up to find out.
*/
static int q_shutdown(lua_State *L) {
  int immediate = lua_toboolean(L, 2);
  al_Queue *q = self_queue(L, 1, "shutdown");
  q->shutdown = 1;
  if (immediate) {
    lua_Integer dropped = q->n;
    if (q->kind == Q_CUSTOM) {
      for (; q->n > 0; q->n--) {
        lua_getiuservalue(L, 2, Q_FETCH);
        lua_pushvalue(L, 1);
        lua_pushinteger(L, q->n);
        lua_call(L, 2, 0);
      }
    } else {
      lua_newtable(L);
      lua_setiuservalue(L, 2, Q_ITEMS);
      q->n = 0;
      q->head = 1;
    }
    q->unfinished = q->unfinished > dropped ? q->unfinished - dropped : 0;
    if (q->unfinished == 0) al_waitlist_wake_all(L, &q->joiners);
  }
  al_waitlist_wake_all(L, &q->getters);
  al_waitlist_wake_all(L, &q->putters);
  return 0;
}

/* q:_state() -> getters, putters, unfinished, shutdown (for __tostring). */
static int q_state(lua_State *L) {
  al_Queue *q = self_queue(L, 1, "_state");
  lua_pushinteger(L, q->getters.n);
  lua_pushinteger(L, q->putters.n);
  lua_pushinteger(L, q->unfinished);
  lua_pushboolean(L, q->shutdown);
  return 4;
}

/* ---------------------------------------------------------------------------------------- */

static int q_gc(lua_State *L) {
  al_Queue *q = lua_touserdata(L, 1);
  al_waitlist_free(&q->getters);
  al_waitlist_free(&q->putters);
  al_waitlist_free(&q->joiners);
  return 0;
}

/* core._Queue(kind, maxsize[, store, fetch]): the core of a new queue (kind: "fifo", "lifo",
   "custom" with Lua storage functions). */
static int q_new(lua_State *L) {
  static const char *const kinds[] = {"fifo", "lifo", "custom", NULL};
  int kind = luaL_checkoption(L, 1, NULL, kinds);
  lua_Number maxsize = luaL_checknumber(L, 2);
  if (kind == Q_CUSTOM) {
    luaL_checktype(L, 3, LUA_TFUNCTION);
    luaL_checktype(L, 4, LUA_TFUNCTION);
  }
  al_Queue *q = lua_newuserdatauv(L, sizeof *q, Q_N);
  memset(q, 0, sizeof *q);
  q->magic = QUEUE_MAGIC;
  q->kind = (unsigned char)kind;
  q->maxsize = maxsize;
  q->head = 1;
  al_waitlist_init(&q->getters);
  al_waitlist_init(&q->putters);
  al_waitlist_init(&q->joiners);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_setmetatable(L, -2);
  if (kind == Q_CUSTOM) {
    lua_pushvalue(L, 3);
    lua_setiuservalue(L, -2, Q_STORE);
    lua_pushvalue(L, 4);
    lua_setiuservalue(L, -2, Q_FETCH);
  } else {
    lua_newtable(L);
    lua_setiuservalue(L, -2, Q_ITEMS);
  }
  return 1;
}

/* core._Queue (constructor) and core._queue_methods (the methods of every queue kind). */
void al_queue_open(lua_State *L, int core) {
  static const luaL_Reg methods[] = {
      {"put", q_put},
      {"get", q_get},
      {"put_nowait", q_put_nowait},
      {"get_nowait", q_get_nowait},
      {"qsize", q_qsize},
      {"empty", q_empty},
      {"full", q_full},
      {"task_done", q_task_done},
      {"join", q_join},
      {"shutdown", q_shutdown},
      {"_state", q_state},
      {NULL, NULL},
  };
  lua_pushlightuserdata(L, al_state(L));
  lua_createtable(L, 0, 1); /* the core's metatable: only __gc */
  lua_pushcfunction(L, q_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcclosure(L, q_new, 2);
  lua_setfield(L, core, "_Queue");
  lua_createtable(L, 0, 12);
  lua_pushlightuserdata(L, al_state(L));
  luaL_setfuncs(L, methods, 1); /* upvalue 1: the al_State (AL_UPSTATE) */
  lua_setfield(L, core, "_queue_methods");
}
