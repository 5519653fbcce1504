/*
** Waiter lists of the synchronization primitives and queues: tasks parked in FIFO order on a C
** object (al_Park, core/task.c), woken one at a time or all at once. No future per wait: a wait
** is one C call that suspends the running task, a wake-up makes it runnable directly.
*/
#ifndef AL_SYNC_WAITLIST_H
#define AL_SYNC_WAITLIST_H

#include "core/internal.h"

typedef struct al_WaitList {
  al_Park park;   /* what parked tasks point at: a cancelled task leaves the list (unpark) */
  al_Loop *loop;  /* the loop of its tasks; the list's owner keeps that loop's userdata alive */
  al_Task **ring; /* the parked tasks, first at ring[head & (cap - 1)]; cap is a power of 2 */
  int cap, head, n;
} al_WaitList;

void al_waitlist_init(al_WaitList *w);
void al_waitlist_free(al_WaitList *w);

/*
** Parks the running task of `loop` at the back of w (at the front when `front`: a waiter woken
** for nothing goes back to its place); what names the caller in errors. Returns what
** al_task_park returns: the C function returns it; k(L, status, top) runs when the task
** resumes, with al_task_thrown telling a cancel from a wake-up (see core/internal.h).
*/
int al_waitlist_park(lua_State *L, al_WaitList *w, al_Loop *loop, int front, const char *what,
                     int top, lua_KFunction k);

/* Wakes the first parked task; 0 if there was none. */
int al_waitlist_wake_first(lua_State *L, al_WaitList *w);

/* Wakes every parked task; returns how many. */
int al_waitlist_wake_all(lua_State *L, al_WaitList *w);

/* The running task that just resumed in k (the list's loop's current task). */
static inline al_Task *al_waitlist_resumed_task(const al_WaitList *w) {
  return w->loop->current_task;
}

void al_waitlist_open(lua_State *L, int core); /* core._WaitList for lua/aloop/sync/waiters.lua */
void al_queue_open(lua_State *L, int core);    /* core._Queue for lua/aloop/sync/queues.lua */

#endif
