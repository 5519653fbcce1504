/*
** Wake-ups from outside the loop's thread: the thread-safe call queue (aloop_call_threadsafe,
** a mutex-protected list drained on the loop thread after an ev_async wake-up) and SIGINT,
** whose handler only sets a flag, arms a Lua hook (to break tight Lua loops, as lua.c does)
** and sends the same ev_async.
*/
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

static void sigint_disarm(void);

static void async_cb(struct ev_loop *ev, ev_async *w, int revents) {
  (void)ev, (void)revents;
  al_Loop *loop = (al_Loop *)((char *)w - offsetof(al_Loop, async));
  if (loop->sigint_flag) {
    loop->sigint_flag = 0;
    loop->interrupted = 1;
    sigint_disarm();
  }
  if (loop->L) al_ts_drain(loop->L, loop);
}

void al_ts_init(al_Loop *loop) {
  ev_async_init(&loop->async, async_cb);
  /* Always active: with nothing else to wait for, ev_run(EVRUN_ONCE) blocks on it. */
  ev_async_start(loop->ev, &loop->async);
}

/* aloop_call_threadsafe, plus `drop(ud)` for a call that the loop's close discards unrun. */
int al_call_threadsafe(al_Loop *loop, aloop_cfn fn, void (*drop)(void *), void *ud) {
  al_TsCall *c = malloc(sizeof *c);
  if (!c) return -1;
  c->next = NULL;
  c->fn = fn;
  c->drop = drop;
  c->ud = ud;
  pthread_mutex_lock(&loop->ts_mu);
  if (loop->ts_closed) {
    pthread_mutex_unlock(&loop->ts_mu);
    free(c);
    return -1;
  }
  if (loop->ts_tail) loop->ts_tail->next = c;
  else loop->ts_head = c;
  loop->ts_tail = c;
  ev_async_send(loop->ev, &loop->async);
  pthread_mutex_unlock(&loop->ts_mu);
  return 0;
}

int aloop_call_threadsafe(aloop_loop *loop, aloop_cfn fn, void *ud) {
  return al_call_threadsafe(loop, fn, NULL, ud);
}

/* Protected trampoline: runs one posted C function on the loop thread. */
static int ts_call(lua_State *L) {
  al_TsCall *c = lua_touserdata(L, 1);
  lua_settop(L, 0);
  c->fn(L, c->ud);
  return 0;
}

/* Runs every posted call (in posting order); errors go to the exception handler. */
void al_ts_drain(lua_State *L, al_Loop *loop) {
  pthread_mutex_lock(&loop->ts_mu);
  al_TsCall *c = loop->ts_head;
  loop->ts_head = loop->ts_tail = NULL;
  pthread_mutex_unlock(&loop->ts_mu);
  while (c) {
    al_TsCall *next = c->next;
    int top = lua_gettop(L);
    lua_pushcfunction(L, al_msgh);
    lua_pushcfunction(L, ts_call);
    lua_pushlightuserdata(L, c);
    if (lua_pcall(L, 1, 0, top + 1) != LUA_OK) {
      if (al_error_is(L, -1, "KeyboardInterrupt")) {
        loop->interrupted = 1; /* as from a callback: run_forever raises it */
        lua_settop(L, top);
        free(c);
        c = next;
        continue;
      }
      lua_pushliteral(L, "Exception in a thread-safe call");
      al_push_error_context(L, lua_gettop(L) - 1);
      al_report(L, loop, -1);
    }
    lua_settop(L, top);
    free(c);
    c = next;
  }
}

/* No more posts: later ones fail with -1; pending ones are dropped (their drop hook runs). */
void al_ts_close(al_Loop *loop) {
  pthread_mutex_lock(&loop->ts_mu);
  loop->ts_closed = 1;
  al_TsCall *c = loop->ts_head;
  loop->ts_head = loop->ts_tail = NULL;
  pthread_mutex_unlock(&loop->ts_mu);
  while (c) {
    al_TsCall *next = c->next;
    if (c->drop) c->drop(c->ud);
    free(c);
    c = next;
  }
}

/* ---------------------------------------------------------------------------------------- */
/* SIGINT while a loop runs (and no Lua-level handler is installed for it). */

static al_Loop *volatile sigint_loop; /* signal handlers cannot find the loop otherwise */
static lua_State *volatile sigint_hooked; /* the Lua thread whose hook the handler armed */
static struct sigaction sigint_prev;
static int sigint_owner; /* 1 while our handler is installed */
static _Thread_local int sigint_never; /* this thread runs a loop of aio.thread: never owns it */

/* Loops run by this OS thread never take SIGINT over (remote loops; see remote.c). */
void al_sigint_disable_thread(void) { sigint_never = 1; }

static void sigint_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  sigint_hooked = NULL;
  al_Loop *loop = sigint_loop;
  if (loop) { /* the loop stops even if a pcall in user code catches the error below */
    loop->sigint_flag = 0;
    loop->interrupted = 1;
  }
  al_error_push(L, "KeyboardInterrupt", NULL);
  lua_error(L);
}

static void sigint_handler(int sig) {
  (void)sig;
  al_Loop *loop = sigint_loop;
  if (!loop) return;
  loop->sigint_flag = 1;
  lua_State *L = loop->cur_L;
  if (L) {
    sigint_hooked = L;
    lua_sethook(L, sigint_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
  }
  ev_async_send(loop->ev, &loop->async);
}

/* The loop noticed the flag: disarm a hook that has not fired yet. */
static void sigint_disarm(void) {
  lua_State *L = sigint_hooked;
  sigint_hooked = NULL;
  if (L) lua_sethook(L, NULL, 0, 0);
}

/* Installs our SIGINT handler for the outermost running loop, unless SIGINT is ignored. */
void al_sigint_install(al_Loop *loop) {
  if (sigint_never) return;
  atomic_signal_fence(memory_order_seq_cst); /* read sigint_owner only in the owning thread */
  if (sigint_owner || loop->sigint_watched) return; /* or a Lua handler owns SIGINT */
  struct sigaction cur;
  sigaction(SIGINT, NULL, &cur);
  if (cur.sa_handler == SIG_IGN) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = sigint_handler;
  sigemptyset(&sa.sa_mask);
  sigint_loop = loop;
  sigaction(SIGINT, &sa, &sigint_prev);
  sigint_owner = 1;
}

void al_sigint_restore(al_Loop *loop) {
  if (sigint_never) return;
  atomic_signal_fence(memory_order_seq_cst);
  if (!sigint_owner || sigint_loop != loop) return;
  sigaction(SIGINT, &sigint_prev, NULL);
  sigint_disarm();
  sigint_loop = NULL;
  sigint_owner = 0;
  loop->sigint_flag = 0;
}
