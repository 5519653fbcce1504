/*
** Watchers. First the only code that starts and stops libev watchers of any kind (fd, timer,
** signal) on behalf of loop objects and keeps loop->nwatchers, which decides whether an
** iteration with ready callbacks polls at all (loop.c). Then loop:add_reader/remove_reader/
** add_writer/remove_writer: one ev_io per (fd, direction), kept in the loop's attribute table
** while active (so libev never uses a collected watcher) and registered with the loop's resources
** (core/resource.c), which stop it at loop:close(). The callback runs as a ready handle.
*/
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "net/net.h"

static const char key_watchers = 0; /* per-loop table: fd*2+dir -> watcher userdata */

typedef struct al_Watcher {
  al_Resource hdr;
  ev_io io;
  al_Loop *loop;
  int fd, dir;
} al_Watcher;

/* Accepts an integer, a Lua file handle (io.stdin) or an object with :fileno(). */
int al_checkfd(lua_State *L, int idx) {
  if (lua_isinteger(L, idx)) {
    lua_Integer fd = lua_tointeger(L, idx);
    if (fd < 0 || fd > 0x7fffffff) luaL_argerror(L, idx, "invalid file descriptor");
    return (int)fd;
  }
  luaL_Stream *s = luaL_testudata(L, idx, LUA_FILEHANDLE);
  if (s) {
    if (!s->closef || !s->f) luaL_argerror(L, idx, "file is closed");
    return fileno(s->f);
  }
  int t = lua_type(L, idx);
  if (t == LUA_TTABLE || (t == LUA_TUSERDATA && luaL_getmetafield(L, idx, "__index") != LUA_TNIL)) {
    if (t == LUA_TUSERDATA) lua_pop(L, 1);
    if (lua_getfield(L, idx, "fileno") == LUA_TFUNCTION) {
      lua_pushvalue(L, idx);
      lua_call(L, 1, 1);
      int isnum;
      lua_Integer fd = lua_tointegerx(L, -1, &isnum);
      lua_pop(L, 1);
      if (isnum && fd >= 0 && fd <= 0x7fffffff) return (int)fd;
    } else {
      lua_pop(L, 1);
    }
  }
  return luaL_typeerror(L, idx, "file descriptor (integer, file or object with :fileno())");
}

static void push_watchers(lua_State *L, int loopidx) {
  lua_getiuservalue(L, loopidx, 1);
  if (lua_rawgetp(L, -1, &key_watchers) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, -3, &key_watchers);
  }
  lua_remove(L, -2);
}

/* The only code that counts active watchers: every watcher of every kind starts and stops here. */
void al_watch_start(al_Loop *loop, ev_io *w) {
  if (ev_is_active(w)) return;
  ev_io_start(loop->ev, w);
  loop->nwatchers++;
}

void al_watch_stop(al_Loop *loop, ev_io *w) {
  if (!ev_is_active(w)) return;
  ev_io_stop(loop->ev, w);
  loop->nwatchers--;
}

void al_watch_timer_start(al_Loop *loop, ev_timer *w) {
  if (ev_is_active(w)) return;
  ev_timer_start(loop->ev, w);
  loop->nwatchers++;
}

void al_watch_timer_stop(al_Loop *loop, ev_timer *w) {
  if (!ev_is_active(w)) return;
  ev_timer_stop(loop->ev, w);
  loop->nwatchers--;
}

void al_watch_signal_start(al_Loop *loop, ev_signal *w) {
  if (ev_is_active(w)) return;
  ev_signal_start(loop->ev, w);
  loop->nwatchers++;
}

void al_watch_signal_stop(al_Loop *loop, ev_signal *w) {
  if (!ev_is_active(w)) return;
  ev_signal_stop(loop->ev, w);
  loop->nwatchers--;
}

static void watcher_cb(struct ev_loop *ev, ev_io *w, int revents) {
  (void)ev, (void)revents;
  al_Watcher *wt = w->data;
  al_Loop *loop = wt->loop;
  lua_State *L = loop->L;
  if (!L) return;
  /* Queue the watcher's handle (uservalue 1) so it runs with the iteration's callbacks. */
  int top = lua_gettop(L);
  al_push_loop(L, loop);
  push_watchers(L, top + 1);
  lua_rawgeti(L, -1, (lua_Integer)wt->fd * 2 + wt->dir);
  if (lua_getiuservalue(L, -1, 1) == LUA_TUSERDATA) al_ready_push(L, loop);
  lua_settop(L, top);
}

/* Stops and forgets the watcher for (fd, dir); 1 if there was one. Stack neutral. */
static int stop_watcher(lua_State *L, al_Loop *loop, int loopidx, int fd, int dir) {
  push_watchers(L, loopidx);
  lua_Integer key = (lua_Integer)fd * 2 + dir;
  al_Watcher *wt = lua_rawgeti(L, -1, key) == LUA_TNIL ? NULL : lua_touserdata(L, -1);
  if (wt) {
    al_watch_stop(loop, &wt->io);
    al_resource_remove_internal(L, loop, wt);
    lua_pushnil(L);
    lua_rawseti(L, -3, key);
  }
  lua_pop(L, 2);
  return wt != NULL;
}

/* loop:close() with the watcher still active (core/resource.c). */
static void watcher_shutdown(lua_State *L, void *obj) {
  al_Watcher *wt = obj;
  al_push_loop(L, wt->loop);
  stop_watcher(L, wt->loop, lua_gettop(L), wt->fd, wt->dir);
  lua_pop(L, 1);
}

static int remove_watcher(lua_State *L, int dir) {
  al_Loop *loop = al_checkloop(L, 1);
  int fd = al_checkfd(L, 2);
  lua_pushboolean(L, !loop->closed && stop_watcher(L, loop, 1, fd, dir));
  return 1;
}

/* loop:add_reader(fd, fn, ...) / add_writer: replaces an existing watcher for that fd. */
static int add_watcher(lua_State *L, int dir) {
  al_Loop *loop = al_checkloop(L, 1);
  if (loop->closed) return luaL_error(L, "aloop: Event loop is closed");
  int fd = al_checkfd(L, 2);
  luaL_checkany(L, 3);
  if (fcntl(fd, F_GETFD) < 0) /* libev would abort on it at the next iteration */
    return al_oserror_raise(L, errno, "add_reader/add_writer");
  int nargs = lua_gettop(L) - 3;
  stop_watcher(L, loop, 1, fd, dir);
  al_handle_new(L, loop, 3, nargs, 0);
  int h = lua_gettop(L);
  al_Watcher *wt = lua_newuserdatauv(L, sizeof *wt, 1);
  wt->hdr.shutdown = watcher_shutdown;
  wt->loop = loop;
  wt->fd = fd;
  wt->dir = dir;
  lua_pushvalue(L, h);
  lua_setiuservalue(L, -2, 1);
  ev_io_init(&wt->io, watcher_cb, fd, dir ? EV_WRITE : EV_READ);
  wt->io.data = wt;
  push_watchers(L, 1);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, (lua_Integer)fd * 2 + dir);
  al_resource_add_internal(L, loop, h + 1);
  al_watch_start(loop, &wt->io);
  lua_settop(L, h);
  return 1;
}

static int loop_add_reader(lua_State *L) { return add_watcher(L, 0); }
static int loop_add_writer(lua_State *L) { return add_watcher(L, 1); }
static int loop_remove_reader(lua_State *L) { return remove_watcher(L, 0); }
static int loop_remove_writer(lua_State *L) { return remove_watcher(L, 1); }

/*
** core._fd_read(fd [, max]): one read(2) of up to max bytes (default AL_READ_SIZE) from a
** readable fd. Returns the bytes, "" when nothing is available now (EAGAIN), or nil at end of
** file. Raw, unbuffered: the REPL reads its stdin with it, one line editor's worth at a time.
*/
static int l_fd_read(lua_State *L) {
  int fd = al_checkfd(L, 1);
  lua_Integer max = luaL_optinteger(L, 2, AL_READ_SIZE);
  luaL_argcheck(L, max > 0 && max <= (1 << 24), 2, "size out of range");
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, (size_t)max);
  ssize_t n;
  do n = read(fd, p, (size_t)max);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) n = 0;
  else if (n < 0) return luaL_error(L, "aloop: read from fd %d failed: %s", fd, strerror(errno));
  else if (n == 0) {
    lua_pushnil(L);
    return 1;
  }
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

/* core._isatty(fd) */
static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty(al_checkfd(L, 1)));
  return 1;
}

static const luaL_Reg io_methods[] = {
    {"add_reader", loop_add_reader},
    {"remove_reader", loop_remove_reader},
    {"add_writer", loop_add_writer},
    {"remove_writer", loop_remove_writer},
    {NULL, NULL},
};

/* The fd-watcher methods go to core.Loop; the raw fd helpers to core. */
void al_io_open(lua_State *L, int core) {
  lua_getfield(L, core, "Loop");
  luaL_setfuncs(L, io_methods, 0);
  lua_pop(L, 1);
  lua_pushcfunction(L, l_fd_read);
  lua_setfield(L, core, "_fd_read");
  lua_pushcfunction(L, l_isatty);
  lua_setfield(L, core, "_isatty");
}
