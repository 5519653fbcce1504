/*
** The worker's side of `aloop --workers N` (the supervisor is src/supervisor.c): the control
** socket the supervisor named in ALOOP_WORKER_FD, listening sockets asked of the supervisor
** (they come back with SCM_RIGHTS), the ready message, and noticing the supervisor's death
** (EOF on the control socket); and, outside a supervisor, running the script again under one
** (app:run{workers = N}). The Lua half is lua/aloop/workers/worker.lua.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"
#include "workers/control.h"
#include "workers/workers.h"

/* This process's place under the supervisor, read once from the environment. It belongs to the
   first Lua state that asks (the interpreter's): the states of thread pools and remote loops
   are no worker, nor is a process forked later (a process pool's). */
static struct {
  int fd; /* -1: not supervised */
  pid_t pid;
  int id, count;
  double grace;
  const void *state; /* the main thread of the owning Lua state */
} self = {-1, 0, 0, 0, 0, NULL};
static pthread_once_t self_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t self_mu = PTHREAD_MUTEX_INITIALIZER;

static void self_init(void) {
  const char *fd = getenv(AL_WORKER_ENV_FD);
  if (!fd) return;
  const char *id = getenv(AL_WORKER_ENV_ID), *count = getenv(AL_WORKER_ENV_COUNT);
  const char *grace = getenv(AL_WORKER_ENV_GRACE);
  self.fd = atoi(fd);
  self.id = id ? atoi(id) : 0;
  self.count = count ? atoi(count) : 0;
  self.grace = grace ? atof(grace) : 0;
  self.pid = getpid();
  fcntl(self.fd, F_SETFD, FD_CLOEXEC); /* children of the worker are no workers */
  unsetenv(AL_WORKER_ENV_FD);
  unsetenv(AL_WORKER_ENV_ID);
  unsetenv(AL_WORKER_ENV_COUNT);
  unsetenv(AL_WORKER_ENV_GRACE);
}

static int control_fd(lua_State *L) {
  pthread_once(&self_once, self_init);
  if (self.fd < 0 || self.pid != getpid()) return -1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  const void *state = lua_topointer(L, -1);
  lua_pop(L, 1);
  pthread_mutex_lock(&self_mu);
  if (!self.state) self.state = state;
  int mine = self.state == state;
  pthread_mutex_unlock(&self_mu);
  return mine ? self.fd : -1;
}

static int checked_control_fd(lua_State *L) {
  int fd = control_fd(L);
  if (fd < 0) luaL_error(L, "aloop: not a worker of `aloop --workers`");
  return fd;
}

/* core._worker() -> {id=, count=, grace=, fd=} or nil when not under a supervisor. */
static int l_worker(lua_State *L) {
  int fd = control_fd(L);
  if (fd < 0) return 0;
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, self.id);
  lua_setfield(L, -2, "id");
  lua_pushinteger(L, self.count);
  lua_setfield(L, -2, "count");
  lua_pushnumber(L, self.grace);
  lua_setfield(L, -2, "grace");
  lua_pushinteger(L, fd);
  lua_setfield(L, -2, "fd");
  return 1;
}

/* core._worker_ready(): tells the supervisor this worker serves. */
static int l_worker_ready(lua_State *L) {
  int op = AL_CTL_READY, fd = checked_control_fd(L);
  while (send(fd, &op, sizeof op, MSG_NOSIGNAL) < 0 && errno == EINTR) {}
  return 0;
}

/* The supervisor's reply and the fd it carries; 0 or an errno. A short blocking exchange: the
   supervisor answers at once and never waits on a worker. */
static int receive_listener(int ctl, int *fd) {
  al_CtlReply rep;
  struct iovec iov = {&rep, sizeof rep};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                       .msg_controllen = sizeof u.buf};
  ssize_t n;
  while ((n = recvmsg(ctl, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {}
  if (n < 0) return errno;
  if (n != (ssize_t)sizeof rep) return EPIPE; /* the supervisor is gone */
  if (rep.err) return rep.err;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) return EPROTO;
  memcpy(fd, CMSG_DATA(c), sizeof *fd);
  return 0;
}

/* core._worker_listen(family, addr, backlog, nth, reuse_address) -> a listening socket object
   shared with the other workers, or raises the OSError binding it raised. */
static int l_worker_listen(lua_State *L) {
  int ctl = checked_control_fd(L);
  al_CtlListen req;
  memset(&req, 0, sizeof req);
  req.op = AL_CTL_LISTEN;
  req.family = (int)luaL_checkinteger(L, 1);
  req.addrlen = al_check_sockaddr(L, 2, req.family, &req.addr);
  req.backlog = (int)luaL_optinteger(L, 3, 100);
  req.nth = (int)luaL_optinteger(L, 4, 0);
  req.reuse_address = lua_isnoneornil(L, 5) || lua_toboolean(L, 5);
  ssize_t n;
  while ((n = send(ctl, &req, sizeof req, MSG_NOSIGNAL)) < 0 && errno == EINTR) {}
  int fd = -1, err = n < 0 ? errno : receive_listener(ctl, &fd);
  if (err) {
    lua_settop(L, 2);
    luaL_tolstring(L, 2, NULL);
    return al_oserror_raise(L, err, lua_pushfstring(L, "bind %s", lua_tostring(L, -1)));
  }
  al_socket_new(L, fd, req.family, SOCK_STREAM);
  return 1;
}

/* core._worker_orphaned() -> true once the supervisor is gone (EOF on the control socket);
   false after a spurious wake-up. */
static int l_worker_orphaned(lua_State *L) {
  int ctl = checked_control_fd(L);
  char c;
  ssize_t n = recv(ctl, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  lua_pushboolean(L, n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR));
  return 1;
}

/* core._worker_terminate_self(): SIGTERM to this process (its handler, or the graceful stop). */
static int l_worker_terminate_self(lua_State *L) {
  (void)L;
  kill(getpid(), SIGTERM);
  return 0;
}

/* core._worker_supervise(nworkers, grace): this script again as nworkers workers under the
   supervisor (the interpreter's supervise_self: an exec that does not return). Returns nil and
   why not: not the aloop interpreter running a script file, or the exec failed. */
static int l_worker_supervise(lua_State *L) {
  lua_settop(L, 2);
  if (lua_getfield(L, LUA_REGISTRYINDEX, AL_SUPERVISE_KEY) != LUA_TFUNCTION) {
    lua_pushnil(L);
    lua_pushliteral(L, "it needs the aloop interpreter running a script file "
                       "(`aloop script.lua`, not -e, stdin, -i or an embedding host)");
    return 2;
  }
  lua_insert(L, 1);
  lua_call(L, 2, 2);
  return 2;
}

static const luaL_Reg worker_funcs[] = {
    {"_worker", l_worker},
    {"_worker_ready", l_worker_ready},
    {"_worker_listen", l_worker_listen},
    {"_worker_orphaned", l_worker_orphaned},
    {"_worker_terminate_self", l_worker_terminate_self},
    {"_worker_supervise", l_worker_supervise},
    {NULL, NULL},
};

void al_worker_open(lua_State *L, int core) {
  lua_pushvalue(L, core);
  luaL_setfuncs(L, worker_funcs, 0);
  lua_pop(L, 1);
}
