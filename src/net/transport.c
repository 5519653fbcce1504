/*
** The transport object stream transports (stream_transport.c) and datagram transports
** (datagram_transport.c) share, as asyncio's _SelectorTransport: its uservalues and lifecycle
** (force_close, then connection_lost from the ready queue, then the fd closes exactly once, or
** at loop:close()), protected protocol calls, the libev callbacks' protected runs (timed in debug
** mode), write-buffer water marks and the methods every kind has. core._transport makes one.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>

#include "net/transport.h"

#define DEFAULT_HIGH 65536 /* write-buffer high-water mark, as asyncio's */
#define DEFAULT_LOW 16384
#define DROPPED_WRITES_WARN 5 /* as asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES */

/* The transport at idx (size and magic number: al_toudata). */
al_Transport *al_transport_check(lua_State *L, int idx) {
  al_Transport *t = AL_TOUDATA(L, idx, al_Transport, AL_TRANSPORT_MAGIC);
  if (t) return t;
  if (lua_type(L, idx) == LUA_TTABLE) { /* a StreamWriter: its methods are its transport's */
    idx = lua_absindex(L, idx);
    lua_getfield(L, idx, "transport");
    lua_replace(L, idx);
  }
  return AL_CHECKUDATA(L, idx, al_Transport, AL_TRANSPORT_MAGIC, "aloop.Transport or StreamWriter");
}

void al_transport_push(lua_State *L, al_Transport *t) { lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref); }

/* Starts or stops the read watcher to match the transport's state. */
void al_transport_update_reading(al_Transport *t) {
  if (t->reading && !(t->reader && t->reader->full) && (!t->closing || t->filter_closing) &&
      !t->read_eof && !t->finished)
    al_watch_start(t->loop, &t->rio);
  else
    al_watch_stop(t->loop, &t->rio);
}

/*
** drain() and wait_closed() waiters: each waiting task has its own future (cancelling one waiter
** leaves the others waiting), kept in a list in uservalue `slot`.
** Pushes a new future appended to that list; futures already done are dropped from it first.
*/
static void add_waiter(lua_State *L, al_Transport *t, int tidx, int slot) {
  tidx = lua_absindex(L, tidx);
  if (lua_getiuservalue(L, tidx, slot) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, tidx, slot);
  }
  int list = lua_gettop(L);
  lua_Integer n = luaL_len(L, list), kept = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    if (((al_Future *)lua_touserdata(L, -1))->state == AL_PENDING) lua_rawseti(L, list, ++kept);
    else lua_pop(L, 1);
  }
  for (lua_Integer i = kept + 1; i <= n; i++) lua_pushnil(L), lua_rawseti(L, list, i);
  lua_getiuservalue(L, tidx, AL_TUV_LOOP);
  al_future_new(L, t->loop, -1);
  lua_pushvalue(L, -1);
  lua_rawseti(L, list, kept + 1);
  lua_replace(L, list);
  lua_pop(L, 1);
}

/* Completes every pending future of the waiter list in uservalue `slot` with no values, or
   with the error at eidx, and empties the list. */
static void wake(lua_State *L, int tidx, int slot, int eidx) {
  tidx = lua_absindex(L, tidx);
  if (eidx) eidx = lua_absindex(L, eidx);
  if (lua_getiuservalue(L, tidx, slot) == LUA_TTABLE) {
    lua_pushnil(L);
    lua_setiuservalue(L, tidx, slot); /* a waiter's callback may add the next list */
    int list = lua_gettop(L);
    lua_Integer n = luaL_len(L, list);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, list, i);
      al_Future *f = lua_touserdata(L, -1);
      if (f->state == AL_PENDING) {
        if (eidx) al_future_set_exception(L, f, -1, eidx, 0);
        else al_future_set_result(L, f, -1, lua_gettop(L), 0);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

static int call_lost(lua_State *L);

/*
** The connection is over (close() flushed, abort(), an I/O error, a failing protocol or
** filter): stop both watchers, drop unsent data and schedule connection_lost(exc) (exc: index
** or 0). A reader raises exc from now on.
*/
void al_transport_force_close(lua_State *L, al_Transport *t, int tidx, int excidx) {
  if (t->lost) return;
  tidx = lua_absindex(L, tidx);
  if (excidx) excidx = lua_absindex(L, excidx);
  t->lost = t->closing = 1;
  if (excidx) { /* drain() right after a failed write raises this error (BrokenPipeError) */
    lua_pushvalue(L, excidx);
    lua_setiuservalue(L, tidx, AL_TUV_EXC);
    if (t->reader) {
      lua_getiuservalue(L, tidx, AL_TUV_READER);
      al_reader_fail(L, -1, excidx);
      lua_pop(L, 1);
    }
  }
  al_watch_stop(t->loop, &t->rio);
  al_watch_stop(t->loop, &t->wio);
  al_buf_free(&t->wbuf);
  lua_pushcfunction(L, call_lost);
  lua_pushvalue(L, tidx);
  if (excidx) lua_pushvalue(L, excidx);
  else lua_pushnil(L);
  al_handle_new(L, t->loop, -3, 2, 0);
  al_ready_push(L, t->loop);
  lua_pop(L, 3);
}

/*
** Calls protocol:name(args) protected, with the nargs values on top as arguments; leaves one
** result (nil when the method is missing or failed). A failure is reported to the exception
** handler and aborts this connection only. Returns 0, or -1 when the method raised.
*/
int al_transport_proto_call(lua_State *L, al_Transport *t, int tidx, const char *name, int nargs) {
  int base = lua_gettop(L) - nargs;
  tidx = lua_absindex(L, tidx);
  t->proto_method = name;
  lua_pushcfunction(L, al_msgh);
  int msgh = lua_gettop(L);
  if (lua_getiuservalue(L, tidx, AL_TUV_PROTO) == LUA_TNIL ||
      lua_getfield(L, -1, name) == LUA_TNIL) {
    lua_settop(L, base);
    lua_pushnil(L);
    return 0;
  }
  lua_insert(L, -2); /* STACK: args, msgh, fn, proto */
  for (int i = 1; i <= nargs; i++) lua_pushvalue(L, base + i);
  if (lua_pcall(L, nargs + 1, 1, msgh) == LUA_OK) {
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
    return 0;
  }
  int err = lua_gettop(L);
  lua_pushfstring(L, "Fatal error: protocol.%s() call failed.", name);
  al_push_error_context(L, err);
  lua_pushvalue(L, tidx);
  lua_setfield(L, -2, "transport");
  lua_getiuservalue(L, tidx, AL_TUV_PROTO);
  lua_setfield(L, -2, "protocol");
  al_report(L, t->loop, -1);
  if (strcmp(name, "connection_lost") != 0) al_transport_force_close(L, t, tidx, err);
  lua_settop(L, base);
  lua_pushnil(L);
  return -1;
}

/* Closes the fd (watchers are already stopped) and forgets the transport. No Lua calls. */
static void finish(lua_State *L, al_Transport *t, int tidx) {
  if (t->finished) return;
  tidx = lua_absindex(L, tidx);
  t->finished = t->lost = t->closing = 1;
  al_watch_stop(t->loop, &t->rio);
  al_watch_stop(t->loop, &t->wio);
  lua_getiuservalue(L, tidx, AL_TUV_SOCK);
  al_socket_close(lua_touserdata(L, -1));
  lua_pop(L, 1);
  t->fd = -1;
  al_buf_free(&t->wbuf);
  if (t->filter) {
    if (t->filter->ops->detach) t->filter->ops->detach(t->filter);
    t->filter = NULL;
    lua_pushnil(L);
    lua_setiuservalue(L, tidx, AL_TUV_FILTER);
  }
  al_resource_remove(L, t->loop, t);
  luaL_unref(L, LUA_REGISTRYINDEX, t->ref);
  t->ref = LUA_NOREF;
}

/* The ready callback scheduled by force_close: close the fd, then connection_lost(exc). */
static int call_lost(lua_State *L) {
  al_Transport *t = lua_touserdata(L, 1); /* always a transport: force_close queued it */
  if (t->finished) return 0;
  finish(L, t, 1);
  if (!lua_isnil(L, 2)) {
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 1, AL_TUV_EXC);
  }
  t->read_eof = 1;
  if (t->reader) al_reader_end(L, t->reader);
  if (lua_isnil(L, 2)) {
    al_error_push(L, "ConnectionResetError", "Connection lost");
    wake(L, 1, AL_TUV_DRAIN, -1);
    lua_pop(L, 1);
  } else {
    wake(L, 1, AL_TUV_DRAIN, 2);
  }
  if (!t->reader) {
    lua_pushvalue(L, 2);
    al_transport_proto_call(L, t, 1, "connection_lost", 1);
  }
  wake(L, 1, AL_TUV_CLOSED, 0);
  lua_pushnil(L);
  lua_setiuservalue(L, 1, AL_TUV_PROTO);
  return 0;
}

/* loop:close() with the transport still open: close the fd without calling Lua. */
static void tr_shutdown(lua_State *L, void *obj) {
  al_Transport *t = obj;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
  finish(L, t, -1);
  lua_pop(L, 1);
}

/*
** Runs fn(t) from a libev callback (or the ready queue) under a protected call; a failure aborts
** the transport. In debug mode a slow run is logged, naming the protocol method it called.
*/
void al_transport_run(al_Transport *t, lua_CFunction fn, const char *what) {
  al_Loop *loop = t->loop;
  lua_State *L = loop->L;
  if (!L) return;
  int top = lua_gettop(L), fd = t->fd;
  double t0 = loop->debug ? al_now() : 0;
  t->proto_method = NULL;
  lua_pushcfunction(L, al_msgh);
  lua_pushcfunction(L, fn);
  lua_pushlightuserdata(L, t);
  if (lua_pcall(L, 1, 0, top + 1) != LUA_OK) {
    int err = lua_gettop(L);
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, "Fatal error on transport");
    lua_setfield(L, -2, "message");
    lua_pushvalue(L, err);
    lua_setfield(L, -2, "exception");
    if (!t->finished) {
      al_transport_push(L, t);
      lua_setfield(L, -2, "transport");
    }
    al_report(L, loop, -1);
    if (!t->finished) {
      al_transport_push(L, t);
      al_transport_force_close(L, t, -1, err);
    }
  }
  lua_settop(L, top);
  if (!loop->debug) return;
  if (t->proto_method)
    al_debug_slow(L, loop, t0, "protocol.%s() of <aloop.Transport fd=%d>", t->proto_method, fd);
  else
    al_debug_slow(L, loop, t0, "the %s callback of <aloop.Transport fd=%d>", what, fd);
}

void al_transport_maybe_pause(lua_State *L, al_Transport *t, int tidx) {
  if (t->wpaused || al_transport_wsize(t) <= t->high) return;
  t->wpaused = 1;
  if (!t->reader) al_transport_proto_call(L, t, tidx, "pause_writing", 0), lua_pop(L, 1);
}

void al_transport_maybe_resume(lua_State *L, al_Transport *t, int tidx) {
  if (!t->wpaused || al_transport_wsize(t) > t->low) return;
  t->wpaused = 0;
  wake(L, tidx, AL_TUV_DRAIN, 0);
  if (!t->reader) al_transport_proto_call(L, t, tidx, "resume_writing", 0), lua_pop(L, 1);
}

/*
** Whether a write is dropped: after close()/abort() or once the connection is lost, writes are
** discarded without an error, as asyncio does (a broadcast loop must not die on one dead peer;
** drain() raises the connection's error). A warning is logged at the fifth dropped write (in
** debug mode at the first).
*/
int al_transport_drops_writes(lua_State *L, al_Transport *t) {
  if (!t->closing) return 0;
  unsigned n = ++t->dropped_writes;
  if (n == DROPPED_WRITES_WARN || (n == 1 && t->loop->debug))
    al_log(L, AL_LOG_WARNING, "aloop: writes to a closed or lost <aloop.Transport fd=%d> are "
           "dropped", t->fd);
  return 1;
}

static int tr_abort(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  al_transport_force_close(L, t, 1, 0);
  return 0;
}

static int tr_is_closing(lua_State *L) {
  lua_pushboolean(L, al_transport_check(L, 1)->closing);
  return 1;
}

static int tr_is_reading(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  lua_pushboolean(L, t->reading && !t->closing);
  return 1;
}

/* set_write_buffer_limits(high, low): defaults 64 KiB and high/4, as asyncio. */
static int tr_set_write_buffer_limits(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  lua_Integer high, low;
  if (lua_isnoneornil(L, 2)) {
    low = luaL_optinteger(L, 3, DEFAULT_LOW);
    high = lua_isnoneornil(L, 3) ? DEFAULT_HIGH : 4 * low;
  } else {
    high = luaL_checkinteger(L, 2);
    low = luaL_optinteger(L, 3, high / 4);
  }
  if (!(high >= low && low >= 0))
    return luaL_error(L, "aloop: high (%d) must be >= low (%d) must be >= 0", (int)high, (int)low);
  t->high = (size_t)high;
  t->low = (size_t)low;
  al_transport_maybe_pause(L, t, 1);
  al_transport_maybe_resume(L, t, 1);
  return 0;
}

static int tr_get_write_buffer_limits(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  lua_pushinteger(L, (lua_Integer)t->low);
  lua_pushinteger(L, (lua_Integer)t->high);
  return 2;
}

static int tr_get_write_buffer_size(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)al_transport_wsize(al_transport_check(L, 1)));
  return 1;
}

/* get_extra_info(name [, default]): "peername", "sockname", "socket" (or "pipe"), and what
   a filter knows. */
static int tr_get_extra_info(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  const char *name = luaL_checkstring(L, 2);
  lua_settop(L, 3);
  if (t->filter && t->filter->ops->extra_info && t->filter->ops->extra_info(L, t, 1, name))
    return 1;
  if (strcmp(name, t->kind == AL_TR_PIPE ? "pipe" : "socket") == 0) {
    lua_getiuservalue(L, 1, AL_TUV_SOCK);
    return 1;
  }
  int peer = strcmp(name, "peername") == 0;
  if (t->kind == AL_TR_PIPE) peer = -1;
  if (peer >= 0 && (peer || strcmp(name, "sockname") == 0) && !t->finished &&
      al_socket_push_name(L, t->fd, peer) == 0)
    return 1;
  lua_pushvalue(L, 3);
  return 1;
}

static int tr_get_protocol(lua_State *L) {
  al_transport_check(L, 1);
  lua_getiuservalue(L, 1, AL_TUV_PROTO);
  return 1;
}

static int tr_set_protocol(lua_State *L) {
  al_transport_check(L, 1);
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, AL_TUV_PROTO);
  return 0;
}

static int tr_get_loop(lua_State *L) {
  al_transport_check(L, 1);
  lua_getiuservalue(L, 1, AL_TUV_LOOP);
  return 1;
}

static int tr_tostring(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  lua_pushfstring(L, "<aloop.Transport fd=%d%s%s>", t->fd, t->closing ? " closing" : "",
                  t->finished ? " closed" : "");
  return 1;
}

static int tr_gc(lua_State *L) {
  al_Transport *t = lua_touserdata(L, 1);
  al_buf_free(&t->wbuf);
  return 0;
}

/* tr:_drain(): returns at once while the write buffer is under the high-water mark, else waits
   (one C call) on a new future that resume_writing completes (one per waiting task). Raises once
   the connection is lost. */
static int tr_drain(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  if (t->lost) {
    if (lua_getiuservalue(L, 1, AL_TUV_EXC) != LUA_TNIL) return lua_error(L);
    return al_error_raise(L, "ConnectionResetError", "Connection lost");
  }
  if (!t->wpaused) return 0;
  lua_settop(L, 1);
  add_waiter(L, t, 1, AL_TUV_DRAIN);
  return al_await(L, -1);
}

/* tr:_wait_closed(): nil once the fd is closed, else a new future completed then. */
static int tr_wait_closed(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  if (t->finished) return 0;
  add_waiter(L, t, 1, AL_TUV_CLOSED);
  return 1;
}

/*
** Makes a transport for the connected socket at sockidx (it takes the socket over) and the
** protocol at protoidx, calls connection_made(transport) and starts reading. Pushes it.
*/
void al_transport_create(lua_State *L, al_Loop *loop, int loopidx, int sockidx, int protoidx,
                         int kind) {
  loopidx = lua_absindex(L, loopidx);
  sockidx = lua_absindex(L, sockidx);
  protoidx = lua_absindex(L, protoidx);
  al_Socket *s = al_socket_check(L, sockidx);
  if (s->fd < 0) al_oserror_raise(L, EBADF, "socket is closed");
  if (s->owned) al_error_raise(L, "Error", "this socket already belongs to a transport");
  al_Transport *t = lua_newuserdatauv(L, sizeof *t, AL_TUV_N);
  memset(t, 0, sizeof *t);
  t->magic = AL_TRANSPORT_MAGIC;
  t->ref = LUA_NOREF;
  t->hdr.shutdown = tr_shutdown;
  t->loop = loop;
  t->fd = s->fd;
  s->owned = 1;
  t->kind = (unsigned char)(kind == AL_TR_DGRAM_CONNECTED ? AL_TR_DGRAM : kind);
  t->dgram_connected = kind == AL_TR_DGRAM_CONNECTED;
  t->family = s->family;
  t->reading = 1;
  t->high = DEFAULT_HIGH;
  t->low = DEFAULT_LOW;
  if (kind == AL_TR_SOCK && (s->family == AF_INET || s->family == AF_INET6)) {
    int one = 1; /* as asyncio: no Nagle delay on TCP transports */
    setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  int dgram = t->kind == AL_TR_DGRAM;
  ev_io_init(&t->rio, dgram ? al_dgram_read_cb : al_stream_read_cb, t->fd, EV_READ);
  ev_io_init(&t->wio, dgram ? al_dgram_write_cb : al_stream_write_cb, t->fd, EV_WRITE);
  t->rio.data = t->wio.data = t;
  luaL_setmetatable(L, AL_TRANSPORT_MT);
  int tidx = lua_gettop(L);
  lua_pushvalue(L, protoidx);
  lua_setiuservalue(L, tidx, AL_TUV_PROTO);
  lua_pushvalue(L, sockidx);
  lua_setiuservalue(L, tidx, AL_TUV_SOCK);
  lua_pushvalue(L, loopidx);
  lua_setiuservalue(L, tidx, AL_TUV_LOOP);
  lua_pushvalue(L, tidx);
  t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  al_resource_add(L, loop, tidx);
  lua_pushvalue(L, tidx);
  al_transport_proto_call(L, t, tidx, "connection_made", 1);
  lua_pop(L, 1);
  al_transport_update_reading(t);
}

/*
** core._transport(loop, sock, protocol [, kind [, connected]]): kind "socket" (default), "pipe"
** (a read or write pipe) or "datagram" (connected: it has a remote address).
*/
static int l_transport(lua_State *L) {
  static const char *const kinds[] = {"socket", "pipe", "datagram", NULL};
  al_Loop *loop = al_checkloop(L, 1);
  if (loop->closed) return luaL_error(L, "aloop: Event loop is closed");
  al_socket_check(L, 2);
  luaL_checkany(L, 3);
  int kind = luaL_checkoption(L, 4, "socket", kinds);
  int connected = lua_toboolean(L, 5);
  lua_settop(L, 3);
  if (kind == AL_TR_PIPE) {
    /* write() to a pipe whose reader is gone raises SIGPIPE (there is no MSG_NOSIGNAL for
       pipes): like Python, ignore it unless the program installed a handler, so the transport
       sees EPIPE instead of the process dying. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
  }
  al_transport_create(L, loop, 1, 2, 3,
                      kind == AL_TR_DGRAM && connected ? AL_TR_DGRAM_CONNECTED : kind);
  return 1;
}

static const luaL_Reg tr_methods[] = {
    {"abort", tr_abort},
    {"is_closing", tr_is_closing},
    {"is_reading", tr_is_reading},
    {"set_write_buffer_limits", tr_set_write_buffer_limits},
    {"get_write_buffer_limits", tr_get_write_buffer_limits},
    {"get_write_buffer_size", tr_get_write_buffer_size},
    {"get_extra_info", tr_get_extra_info},
    {"get_protocol", tr_get_protocol},
    {"set_protocol", tr_set_protocol},
    {"get_loop", tr_get_loop},
    {"_drain", tr_drain},
    {"_wait_closed", tr_wait_closed},
    {NULL, NULL},
};

static const luaL_Reg tr_meta[] = {
    {"__gc", tr_gc},
    {"__tostring", tr_tostring},
    {NULL, NULL},
};

/* One metatable for both kinds: these methods, the stream transport's and the datagram
   transport's; __close is the stream transport's close. core._transport. */
void al_transport_open(lua_State *L, int core) {
  al_new_class(L, AL_TRANSPORT_MT, tr_methods, tr_meta);
  luaL_setfuncs(L, al_stream_methods, 0);
  luaL_setfuncs(L, al_dgram_methods, 0);
  lua_getfield(L, -1, "close");
  lua_setfield(L, -3, "__close");
  lua_setfield(L, core, "_transport_methods"); /* streams.lua's StreamWriter methods */
  lua_pop(L, 1);
  lua_pushcfunction(L, l_transport);
  lua_setfield(L, core, "_transport");
}
