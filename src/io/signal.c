/*
** Unix signal handlers: loop:add_signal_handler / remove_signal_handler on libev signal
** watchers. The handler runs as an ordinary callback of the loop (queued like a handle), never
** in the signal context. libev lets one loop own a signal at a time, so ownership is checked
** here with a clear error. Removing the last handler restores the default disposition; SIGINT
** then goes back to aloop's own (KeyboardInterrupt out of run_forever, threadsafe.c).
*/
#include <signal.h>
#include <string.h>

#include "core/internal.h"

static const char key_sigwatchers = 0; /* per-loop table: signo -> watcher userdata */

static const struct {
  const char *name;
  int signo;
} signal_names[] = {
    {"SIGHUP", SIGHUP},   {"SIGINT", SIGINT},     {"SIGQUIT", SIGQUIT},     {"SIGILL", SIGILL},
    {"SIGTRAP", SIGTRAP}, {"SIGABRT", SIGABRT},   {"SIGBUS", SIGBUS},       {"SIGFPE", SIGFPE},
    {"SIGKILL", SIGKILL}, {"SIGUSR1", SIGUSR1},   {"SIGSEGV", SIGSEGV},     {"SIGUSR2", SIGUSR2},
    {"SIGPIPE", SIGPIPE}, {"SIGALRM", SIGALRM},   {"SIGTERM", SIGTERM},     {"SIGCHLD", SIGCHLD},
    {"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP},   {"SIGTSTP", SIGTSTP},     {"SIGTTIN", SIGTTIN},
    {"SIGTTOU", SIGTTOU}, {"SIGURG", SIGURG},     {"SIGXCPU", SIGXCPU},     {"SIGXFSZ", SIGXFSZ},
    {"SIGVTALRM", SIGVTALRM}, {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH}, {"SIGIO", SIGIO},
    {"SIGSYS", SIGSYS},   {NULL, 0},
};

/* Which loop owns each signal (libev allows one), across all Lua states of the process. */
static al_Loop *owners[NSIG];
static pthread_mutex_t owners_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct al_SigWatcher {
  al_Resource hdr;
  ev_signal sig;
  al_Loop *loop;
} al_SigWatcher;

/* A signal number from a number or a name ("SIGTERM"); raises for what does not exist. */
int al_checksignal(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    const char *name = lua_tostring(L, idx);
    for (int i = 0; signal_names[i].name; i++)
      if (strcmp(signal_names[i].name, name) == 0) return signal_names[i].signo;
    return luaL_error(L, "aloop: unknown signal '%s' (names are like \"SIGTERM\")", name);
  }
  int isnum;
  lua_Integer n = lua_tointegerx(L, idx, &isnum);
  if (!isnum) return luaL_typeerror(L, idx, "signal number or name");
  if (n < 1 || n >= NSIG) return luaL_error(L, "aloop: invalid signal number %d", (int)n);
  return (int)n;
}

static void push_watchers(lua_State *L, int loopidx) {
  lua_getiuservalue(L, loopidx, 1);
  if (lua_rawgetp(L, -1, &key_sigwatchers) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, -3, &key_sigwatchers);
  }
  lua_remove(L, -2);
}

static void signal_cb(struct ev_loop *ev, ev_signal *w, int revents) {
  (void)ev, (void)revents;
  al_SigWatcher *sw = w->data;
  al_Loop *loop = sw->loop;
  lua_State *L = loop->L;
  if (!L) return;
  int top = lua_gettop(L);
  al_push_loop(L, loop);
  push_watchers(L, top + 1);
  lua_rawgeti(L, -1, w->signum);
  if (lua_getiuservalue(L, -1, 1) == LUA_TUSERDATA) al_ready_push(L, loop); /* its handle */
  lua_settop(L, top);
}

/* Stops and forgets the watcher for signo; 1 if there was one. Stack neutral. */
static int stop_watcher(lua_State *L, al_Loop *loop, int loopidx, int signo) {
  push_watchers(L, loopidx);
  al_SigWatcher *sw = lua_rawgeti(L, -1, signo) == LUA_TNIL ? NULL : lua_touserdata(L, -1);
  if (sw) {
    al_watch_signal_stop(loop, &sw->sig);
    al_resource_remove_internal(L, loop, sw);
    lua_pushnil(L);
    lua_rawseti(L, -3, signo);
    pthread_mutex_lock(&owners_mu);
    if (owners[signo] == loop) owners[signo] = NULL;
    pthread_mutex_unlock(&owners_mu);
    if (signo == SIGINT) {
      loop->sigint_watched = 0;
      if (loop->running) al_sigint_install(loop); /* back to KeyboardInterrupt */
    }
  }
  lua_pop(L, 2);
  return sw != NULL;
}

/* loop:close() with the handler still installed (core/resource.c). */
static void sigwatcher_shutdown(lua_State *L, void *obj) {
  al_SigWatcher *sw = obj;
  al_push_loop(L, sw->loop);
  stop_watcher(L, sw->loop, lua_gettop(L), sw->sig.signum);
  lua_pop(L, 1);
}

/* loop:add_signal_handler(sig, fn, ...): fn(...) runs as a loop callback at each delivery. */
static int loop_add_signal_handler(lua_State *L) {
  al_Loop *loop = al_checkloop(L, 1);
  if (loop->closed) return luaL_error(L, "aloop: Event loop is closed");
  int signo = al_checksignal(L, 2);
  luaL_checkany(L, 3);
  if (signo == SIGKILL || signo == SIGSTOP)
    return luaL_error(L, "aloop: signal %d cannot be caught", signo);
  if (signo == SIGCHLD)
    return luaL_error(L, "aloop: SIGCHLD is reserved for subprocess reaping");
  pthread_mutex_lock(&owners_mu);
  al_Loop *owner = owners[signo];
  if (!owner) owners[signo] = loop;
  pthread_mutex_unlock(&owners_mu);
  if (owner && owner != loop)
    return luaL_error(L, "aloop: signal %d is already handled by another event loop", signo);
  stop_watcher(L, loop, 1, signo);
  pthread_mutex_lock(&owners_mu);
  owners[signo] = loop;
  pthread_mutex_unlock(&owners_mu);
  int nargs = lua_gettop(L) - 3;
  al_handle_new(L, loop, 3, nargs, 0);
  int h = lua_gettop(L);
  al_SigWatcher *sw = lua_newuserdatauv(L, sizeof *sw, 1);
  sw->hdr.shutdown = sigwatcher_shutdown;
  sw->loop = loop;
  lua_pushvalue(L, h);
  lua_setiuservalue(L, -2, 1);
  if (signo == SIGINT) { /* the user's handler replaces aloop's KeyboardInterrupt */
    al_sigint_restore(loop);
    loop->sigint_watched = 1;
  }
  ev_signal_init(&sw->sig, signal_cb, signo);
  sw->sig.data = sw;
  push_watchers(L, 1);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, signo);
  al_resource_add_internal(L, loop, h + 1);
  al_watch_signal_start(loop, &sw->sig);
  lua_settop(L, h);
  return 1;
}

/* loop:remove_signal_handler(sig) -> true if a handler was removed. */
static int loop_remove_signal_handler(lua_State *L) {
  al_Loop *loop = al_checkloop(L, 1);
  int signo = al_checksignal(L, 2);
  lua_pushboolean(L, !loop->closed && stop_watcher(L, loop, 1, signo));
  return 1;
}

/* loop:_signal_handled(sig) -> true if some loop of the process has a handler for sig. */
static int loop_signal_handled(lua_State *L) {
  al_checkloop(L, 1);
  int signo = al_checksignal(L, 2);
  pthread_mutex_lock(&owners_mu);
  lua_pushboolean(L, owners[signo] != NULL);
  pthread_mutex_unlock(&owners_mu);
  return 1;
}

static const luaL_Reg signal_methods[] = {
    {"add_signal_handler", loop_add_signal_handler},
    {"remove_signal_handler", loop_remove_signal_handler},
    {"_signal_handled", loop_signal_handled},
    {NULL, NULL},
};

/* The methods go to core.Loop; core.signal maps names to numbers. */
void al_signal_open(lua_State *L, int core) {
  lua_getfield(L, core, "Loop");
  luaL_setfuncs(L, signal_methods, 0);
  lua_pop(L, 1);
  lua_newtable(L);
  for (int i = 0; signal_names[i].name; i++) {
    lua_pushinteger(L, signal_names[i].signo);
    lua_setfield(L, -2, signal_names[i].name);
  }
  lua_setfield(L, core, "signal");
}
