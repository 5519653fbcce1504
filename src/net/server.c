/*
** Listeners: the accepting half of a Server (create_server/start_server in net.lua). An ev_io on
** the listening socket accepts in batches with accept4 (non-blocking, close-on-exec), calls the
** protocol factory under protection and makes a transport per connection. When the process is
** out of fds (EMFILE, ENFILE, ENOBUFS, ENOMEM) accepting pauses for a moment instead of spinning:
** the pending connections wait in the kernel's backlog until fds are free again. In debug mode a
** slow accept callback (protocol factories, connection_made) is logged as slow callbacks are.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"

#define ACCEPT_BATCH 64
#define ACCEPT_RETRY_DELAY 0.1

enum { LV_SOCK = 1, LV_FACTORY, LV_LOOP, LV_TRACK, LV_N = LV_TRACK }; /* LV_TRACK: on_conn */

typedef struct al_Listener {
  al_Resource hdr;
  ev_io io;
  ev_timer retry;
  al_Loop *loop;
  int ref;
  unsigned char serving, closed;
  uint32_t magic; /* LISTENER_MAGIC */
} al_Listener;

#define LISTENER_MAGIC 0x6c736e72u /* "lsnr" (al_toudata) */

static al_Listener *check_ls(lua_State *L, int idx) {
  return AL_CHECKUDATA(L, idx, al_Listener, LISTENER_MAGIC, AL_LISTENER_MT);
}

static void ls_stop(al_Listener *ls) {
  al_watch_stop(ls->loop, &ls->io);
  al_watch_timer_stop(ls->loop, &ls->retry);
}

/* Stops accepting for good (the Server closes the socket). */
static void ls_close(lua_State *L, al_Listener *ls) {
  if (ls->closed) return;
  ls->closed = 1;
  ls->serving = 0;
  ls_stop(ls);
  al_resource_remove(L, ls->loop, ls);
  luaL_unref(L, LUA_REGISTRYINDEX, ls->ref);
  ls->ref = LUA_NOREF;
}

/* loop:close() while serving: stop and close the listening socket. */
static void ls_shutdown(lua_State *L, void *obj) {
  al_Listener *ls = obj;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ls->ref);
  lua_getiuservalue(L, -1, LV_SOCK);
  al_socket_close(lua_touserdata(L, -1));
  lua_pop(L, 2);
  ls_close(L, ls);
}

static void report(lua_State *L, al_Loop *loop, const char *msg, int eidx, int lidx) {
  eidx = lua_absindex(L, eidx);
  lidx = lua_absindex(L, lidx);
  lua_pushstring(L, msg);
  al_push_error_context(L, eidx);
  lua_getiuservalue(L, lidx, LV_SOCK);
  lua_setfield(L, -2, "socket");
  al_report(L, loop, -1);
  lua_pop(L, 1);
}

/* Accepts what is waiting (up to a batch); runs under a protected call. */
static int accept_ready(lua_State *L) {
  al_Listener *ls = lua_touserdata(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ls->ref);
  int lidx = lua_gettop(L);
  lua_getiuservalue(L, lidx, LV_SOCK);
  al_Socket *srv = lua_touserdata(L, -1);
  lua_getiuservalue(L, lidx, LV_LOOP);
  int loopidx = lua_gettop(L);
  int base = lua_gettop(L);
  for (int i = 0; i < ACCEPT_BATCH && ls->serving && srv->fd >= 0; i++) {
    int fd;
    do fd = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      if (err == ECONNABORTED || err == EPROTO || err == EPERM) continue;
      /* Out of resources: report once, stop watching, retry after a delay. */
      al_oserror_push(L, err, "accept");
      report(L, ls->loop, "socket.accept() out of system resource", -1, lidx);
      lua_settop(L, base);
      if (!ls->serving) break; /* the handler closed the server: nothing left to retry */
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        al_watch_stop(ls->loop, &ls->io);
        ev_timer_set(&ls->retry, ACCEPT_RETRY_DELAY, ACCEPT_RETRY_DELAY); /* a full delay */
        al_watch_timer_start(ls->loop, &ls->retry);
      }
      break;
    }
    al_socket_new(L, fd, srv->family, srv->type);
    int sidx = lua_gettop(L);
    lua_pushcfunction(L, al_msgh);
    lua_getiuservalue(L, lidx, LV_FACTORY);
    if (lua_pcall(L, 0, 1, sidx + 1) != LUA_OK) {
      report(L, ls->loop, "Error in the protocol factory of a server", -1, lidx);
      al_socket_close(lua_touserdata(L, sidx));
    } else {
      al_transport_create(L, ls->loop, loopidx, sidx, -1, AL_TR_SOCK);
      if (lua_getiuservalue(L, lidx, LV_TRACK) != LUA_TNIL) { /* the Server counts it */
        lua_insert(L, -2);
        lua_call(L, 1, 0);
      }
    }
    lua_settop(L, base);
  }
  return 0;
}

static void accept_cb(struct ev_loop *ev, ev_io *w, int revents) {
  (void)ev, (void)revents;
  al_Listener *ls = w->data;
  al_Loop *loop = ls->loop;
  lua_State *L = loop->L;
  if (!L) return;
  int top = lua_gettop(L);
  double t0 = loop->debug ? al_now() : 0;
  lua_pushcfunction(L, al_msgh);
  lua_pushcfunction(L, accept_ready);
  lua_pushlightuserdata(L, ls);
  if (lua_pcall(L, 1, 0, top + 1) != LUA_OK) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ls->ref);
    report(L, ls->loop, "Error while accepting a connection", -2, -1);
  }
  lua_settop(L, top);
  if (loop->debug) /* the protocol factory and connection_made ran in it */
    al_debug_slow(L, loop, t0, "the accept callback of <aloop.Listener fd=%d>", w->fd);
}

static void retry_cb(struct ev_loop *ev, ev_timer *w, int revents) {
  (void)ev, (void)revents;
  al_Listener *ls = w->data;
  al_watch_timer_stop(ls->loop, w); /* it repeats: active until stopped here */
  if (ls->serving && !ls->closed) al_watch_start(ls->loop, &ls->io);
}

/* core._listener(loop, sock, factory [, on_conn]): not accepting until :start();
   on_conn(transport) is called for each connection it makes. */
static int l_listener(lua_State *L) {
  al_Loop *loop = al_checkloop(L, 1);
  al_Socket *s = al_socket_check(L, 2);
  luaL_checkany(L, 3);
  lua_settop(L, 4);
  if (s->fd < 0) return al_oserror_raise(L, EBADF, "socket is closed");
  al_Listener *ls = lua_newuserdatauv(L, sizeof *ls, LV_N);
  memset(ls, 0, sizeof *ls);
  ls->magic = LISTENER_MAGIC;
  ls->hdr.shutdown = ls_shutdown;
  ls->loop = loop;
  ev_io_init(&ls->io, accept_cb, s->fd, EV_READ);
  ev_timer_init(&ls->retry, retry_cb, ACCEPT_RETRY_DELAY, ACCEPT_RETRY_DELAY); /* repeats */
  ls->io.data = ls->retry.data = ls;
  luaL_setmetatable(L, AL_LISTENER_MT);
  for (int i = 1; i <= LV_N; i++) {
    lua_pushvalue(L, i == LV_SOCK ? 2 : i == LV_FACTORY ? 3 : i == LV_TRACK ? 4 : 1);
    lua_setiuservalue(L, -2, i);
  }
  lua_pushvalue(L, -1);
  ls->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  al_resource_add(L, loop, -1);
  return 1;
}

static int ls_start(lua_State *L) {
  al_Listener *ls = check_ls(L, 1);
  if (ls->closed || ls->serving) return 0;
  ls->serving = 1;
  al_watch_start(ls->loop, &ls->io);
  return 0;
}

static int ls_pause(lua_State *L) {
  al_Listener *ls = check_ls(L, 1);
  ls->serving = 0;
  ls_stop(ls);
  return 0;
}

static int ls_close_m(lua_State *L) {
  ls_close(L, check_ls(L, 1));
  return 0;
}

static int ls_is_serving(lua_State *L) {
  lua_pushboolean(L, check_ls(L, 1)->serving);
  return 1;
}

static const luaL_Reg ls_methods[] = {
    {"start", ls_start},
    {"pause", ls_pause},
    {"close", ls_close_m},
    {"is_serving", ls_is_serving},
    {NULL, NULL},
};

void al_server_open(lua_State *L, int core) {
  al_new_class(L, AL_LISTENER_MT, ls_methods, NULL);
  lua_pop(L, 2);
  lua_pushcfunction(L, l_listener);
  lua_setfield(L, core, "_listener");
}
