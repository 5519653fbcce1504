/*
** Transports: stream sockets (TCP, Unix, socketpairs, accepted sockets), pipes
** (connect_read_pipe/connect_write_pipe) and datagram sockets (UDP), with asyncio semantics: write()
** never blocks (what the socket does not take now waits in a C buffer, flushed with writev/send
** when writable), close() flushes then closes, abort() discards, write_eof() half-closes,
** high/low water marks drive pause_writing/resume_writing, and the protocol (a Lua table) is
** called directly from the libev callback under protection. In stream mode (streams.lua) no
** protocol is called: received bytes go to a bounded C read buffer that the StreamReader
** methods consume, and tasks wait on futures that the callbacks complete. Datagram transports
** queue what the socket does not take now as records (lengths, address, data) in the same
** write buffer and call datagram_received(data, addr) / error_received(err).
*/
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "net/net.h"

#define READ_CHUNK 65536
#define MAX_IOV 64

enum {
  UV_PROTO = 1, /* the protocol */
  UV_SOCK,      /* the socket object (owns the fd) */
  UV_LOOP,      /* the loop userdata */
  UV_RWAIT,     /* stream mode: the future a reading task waits on */
  UV_DRAIN,     /* the future drain() waits on */
  UV_EXC,       /* the error the connection was lost with */
  UV_CLOSED,    /* the future wait_closed() waits on */
  UV_N = UV_CLOSED
};

typedef struct Buf {
  char *p;
  size_t off, len, cap; /* data is p[off .. off+len) */
} Buf;

typedef struct al_Transport {
  al_Resource hdr;
  ev_io rio, wio;
  al_Loop *loop;
  int fd;
  int ref; /* registry ref of the userdata until the fd is closed */
  unsigned char reading;  /* not paused by the user */
  unsigned char rpaused;  /* stream mode: paused because the read buffer passed its limit */
  unsigned char closing;  /* close()/abort() called or the connection is lost: no more writes */
  unsigned char eof_req;  /* write_eof() called */
  unsigned char eof_sent; /* shutdown(SHUT_WR) done */
  unsigned char read_eof; /* the peer sent EOF */
  unsigned char lost;     /* connection_lost is scheduled or done */
  unsigned char finished; /* the fd is closed */
  unsigned char wpaused;  /* above the high-water mark (pause_writing was called) */
  unsigned char stream;   /* stream mode */
  unsigned char kind;     /* AL_TR_SOCK, AL_TR_PIPE or AL_TR_DGRAM */
  unsigned char dgram_connected; /* datagram socket with a remote address */
  int family;
  Buf wbuf, rbuf;
  size_t high, low, limit;
} al_Transport;

/* ---------------------------------------------------------------------------------------- */
/* Buffers. */

static void buf_free(Buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* Room for n more bytes at the end; 0 on allocation failure. */
static int buf_reserve(Buf *b, size_t n) {
  if (b->off + b->len + n <= b->cap) return 1;
  if (b->off > 0) { /* slide the data to the front first */
    memmove(b->p, b->p + b->off, b->len);
    b->off = 0;
    if (b->len + n <= b->cap) return 1;
  }
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + n) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) return 0;
  b->p = p;
  b->cap = cap;
  return 1;
}

static void buf_consume(Buf *b, size_t n) {
  b->off += n;
  b->len -= n;
  if (b->len == 0) b->off = 0;
}

/* ---------------------------------------------------------------------------------------- */

/*
** The transport at idx. Every function that checks has the metatable as its upvalue 1: a pointer
** comparison instead of luaL_checkudata's registry lookup by name, on every write().
*/
static al_Transport *check_tr(lua_State *L, int idx) {
  void *p = lua_touserdata(L, idx);
  if (p && lua_getmetatable(L, idx)) {
    int ok = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
    if (ok) return p;
  }
  luaL_typeerror(L, idx, AL_TRANSPORT_MT);
  return NULL;
}

static void push_tr(lua_State *L, al_Transport *t) { lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref); }

/* One read or write on the fd, retried on EINTR: recv/send (never SIGPIPE) or read/write. */
static ssize_t io_read(al_Transport *t, char *p, size_t n) {
  ssize_t r;
  do r = t->kind == AL_TR_PIPE ? read(t->fd, p, n) : recv(t->fd, p, n, 0);
  while (r < 0 && errno == EINTR);
  return r;
}

static ssize_t io_write(al_Transport *t, const char *p, size_t n) {
  ssize_t r;
  do r = t->kind == AL_TR_PIPE ? write(t->fd, p, n) : send(t->fd, p, n, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  return r;
}

/* Starts or stops the read watcher to match the transport's state. */
static void update_reading(al_Transport *t) {
  if (t->reading && !t->rpaused && !t->closing && !t->read_eof && !t->finished)
    al_watch_start(t->loop, &t->rio);
  else
    al_watch_stop(t->loop, &t->rio);
}

/* Completes the future in uservalue `slot` (if any) with no values, or with the error at eidx. */
static void wake(lua_State *L, int tidx, int slot, int eidx) {
  if (lua_getiuservalue(L, tidx, slot) == LUA_TUSERDATA) {
    al_Future *f = lua_touserdata(L, -1);
    if (f->state == AL_PENDING) {
      if (eidx) al_future_set_exception(L, f, -1, eidx, 0);
      else al_future_set_result(L, f, -1, lua_gettop(L), 0);
    }
    lua_pushnil(L);
    lua_setiuservalue(L, tidx, slot);
  }
  lua_pop(L, 1);
}

static int call_lost(lua_State *L);

/*
** The connection is over (close() flushed, abort(), an I/O error, a failing protocol): stop
** both watchers, drop unsent data and schedule connection_lost(exc) (exc: index or 0).
*/
static void force_close(lua_State *L, al_Transport *t, int tidx, int excidx) {
  if (t->lost) return;
  tidx = lua_absindex(L, tidx);
  if (excidx) excidx = lua_absindex(L, excidx);
  t->lost = t->closing = 1;
  if (excidx) { /* drain() right after a failed write raises this error (BrokenPipeError) */
    lua_pushvalue(L, excidx);
    lua_setiuservalue(L, tidx, UV_EXC);
  }
  al_watch_stop(t->loop, &t->rio);
  al_watch_stop(t->loop, &t->wio);
  buf_free(&t->wbuf);
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
static int proto_call(lua_State *L, al_Transport *t, int tidx, const char *name, int nargs) {
  int base = lua_gettop(L) - nargs;
  tidx = lua_absindex(L, tidx);
  lua_pushcfunction(L, al_msgh);
  int msgh = lua_gettop(L);
  if (lua_getiuservalue(L, tidx, UV_PROTO) == LUA_TNIL || lua_getfield(L, -1, name) == LUA_TNIL) {
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
  lua_createtable(L, 0, 5);
  lua_pushfstring(L, "Fatal error: protocol.%s() call failed.", name);
  lua_setfield(L, -2, "message");
  lua_pushvalue(L, err);
  lua_setfield(L, -2, "exception");
  lua_pushvalue(L, tidx);
  lua_setfield(L, -2, "transport");
  lua_getiuservalue(L, tidx, UV_PROTO);
  lua_setfield(L, -2, "protocol");
  al_push_lasttb(L);
  lua_setfield(L, -2, "traceback");
  al_report(L, t->loop, -1);
  if (strcmp(name, "connection_lost") != 0) force_close(L, t, tidx, err);
  lua_settop(L, base);
  lua_pushnil(L);
  return -1;
}

/* An I/O error on the socket: the connection is lost with an OSError for errno err. */
static void io_error(lua_State *L, al_Transport *t, int tidx, int err, const char *what) {
  al_oserror_push(L, err, what);
  force_close(L, t, tidx, -1);
  lua_pop(L, 1);
}

/* Closes the fd (watchers are already stopped) and forgets the transport. No Lua calls. */
static void finish(lua_State *L, al_Transport *t, int tidx) {
  if (t->finished) return;
  t->finished = t->lost = t->closing = 1;
  al_watch_stop(t->loop, &t->rio);
  al_watch_stop(t->loop, &t->wio);
  lua_getiuservalue(L, tidx, UV_SOCK);
  al_socket_close(lua_touserdata(L, -1));
  lua_pop(L, 1);
  t->fd = -1;
  buf_free(&t->wbuf);
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
    lua_setiuservalue(L, 1, UV_EXC);
  }
  t->read_eof = 1;
  wake(L, 1, UV_RWAIT, 0);
  if (lua_getiuservalue(L, 1, UV_DRAIN) == LUA_TUSERDATA) {
    if (lua_isnil(L, 2)) {
      al_error_push(L, "ConnectionResetError", "Connection lost");
      wake(L, 1, UV_DRAIN, -1);
      lua_pop(L, 1);
    } else {
      wake(L, 1, UV_DRAIN, 2);
    }
  }
  lua_pop(L, 1);
  if (!t->stream) {
    lua_pushvalue(L, 2);
    proto_call(L, t, 1, "connection_lost", 1);
  }
  wake(L, 1, UV_CLOSED, 0);
  lua_pushnil(L);
  lua_setiuservalue(L, 1, UV_PROTO);
  return 0;
}

/* loop:close() with the transport still open: close the fd without calling Lua. */
static void tr_shutdown(lua_State *L, void *obj) {
  al_Transport *t = obj;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
  finish(L, t, -1);
  lua_pop(L, 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Flow control. */

static void maybe_pause(lua_State *L, al_Transport *t, int tidx) {
  if (t->wpaused || t->wbuf.len <= t->high) return;
  t->wpaused = 1;
  if (!t->stream) proto_call(L, t, tidx, "pause_writing", 0), lua_pop(L, 1);
}

static void maybe_resume(lua_State *L, al_Transport *t, int tidx) {
  if (!t->wpaused || t->wbuf.len > t->low) return;
  t->wpaused = 0;
  wake(L, tidx, UV_DRAIN, 0);
  if (!t->stream) proto_call(L, t, tidx, "resume_writing", 0), lua_pop(L, 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Datagrams. */

/* A queued datagram in the write buffer: this header, the address, then the data. */
typedef struct DgramHead {
  uint32_t len, addrlen;
} DgramHead;

/* An error from recvfrom/sendto goes to protocol:error_received(err); the endpoint stays. */
static void dgram_error(lua_State *L, al_Transport *t, int tidx, int err, const char *what) {
  al_oserror_push(L, err, what);
  proto_call(L, t, tidx, "error_received", 1);
  lua_pop(L, 1);
}

static int dgram_read(lua_State *L, al_Transport *t, int tidx) {
  char buf[READ_CHUNK];
  struct sockaddr_storage ss;
  socklen_t slen = sizeof ss;
  ssize_t n;
  do n = recvfrom(t->fd, buf, sizeof buf, 0, (struct sockaddr *)&ss, &slen);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) dgram_error(L, t, tidx, errno, "recvfrom");
    return 0;
  }
  lua_pushlstring(L, buf, (size_t)n);
  al_push_sockaddr(L, (struct sockaddr *)&ss, slen);
  proto_call(L, t, tidx, "datagram_received", 2);
  return 0;
}

/* Sends one datagram now: 1 sent (or failed and reported), 0 would block. */
static int dgram_send(lua_State *L, al_Transport *t, int tidx, const char *p, size_t len,
                      const struct sockaddr *sa, socklen_t salen) {
  ssize_t n;
  do n = sendto(t->fd, p, len, MSG_NOSIGNAL, salen ? sa : NULL, salen);
  while (n < 0 && errno == EINTR);
  if (n >= 0) return 1;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return 0;
  dgram_error(L, t, tidx, errno, "sendto");
  return 1;
}

/* Sends queued datagrams while the socket takes them; 1 if some are still queued. */
static int dgram_flush(lua_State *L, al_Transport *t, int tidx) {
  while (t->wbuf.len > 0 && !t->lost) {
    DgramHead h;
    char *rec = t->wbuf.p + t->wbuf.off;
    memcpy(&h, rec, sizeof h);
    if (!dgram_send(L, t, tidx, rec + sizeof h + h.addrlen, h.len,
                    (struct sockaddr *)(rec + sizeof h), h.addrlen))
      return 1;
    buf_consume(&t->wbuf, sizeof h + h.addrlen + h.len);
  }
  return 0;
}

/* sendto(data [, addr]): addr may be left out when the endpoint has a remote address. */
static int tr_sendto(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  if (t->kind != AL_TR_DGRAM) return luaL_error(L, "aloop: sendto() on a stream transport");
  size_t len;
  const char *p = luaL_checklstring(L, 2, &len);
  struct sockaddr_storage ss;
  socklen_t salen = 0;
  if (!lua_isnoneornil(L, 3)) {
    if (t->dgram_connected)
      return luaL_error(L, "aloop: Invalid address: must be nil when the endpoint is connected");
    salen = al_check_sockaddr(L, 3, t->family, &ss);
  } else if (!t->dgram_connected) {
    return luaL_error(L, "aloop: sendto() needs an address (the endpoint has no remote address)");
  }
  if (t->closing) return al_error_raise(L, "InvalidStateError", "sendto() on a closing transport");
  if (t->wbuf.len == 0 && dgram_send(L, t, 1, p, len, (struct sockaddr *)&ss, salen)) return 0;
  DgramHead h = {(uint32_t)len, (uint32_t)salen};
  if (!buf_reserve(&t->wbuf, sizeof h + salen + len)) return luaL_error(L, "not enough memory");
  char *q = t->wbuf.p + t->wbuf.off + t->wbuf.len;
  memcpy(q, &h, sizeof h);
  memcpy(q + sizeof h, &ss, salen);
  memcpy(q + sizeof h + salen, p, len);
  t->wbuf.len += sizeof h + salen + len;
  al_watch_start(t->loop, &t->wio);
  maybe_pause(L, t, 1);
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Reading. */

static int read_ready(lua_State *L) {
  al_Transport *t = lua_touserdata(L, 1);
  push_tr(L, t);
  int tidx = lua_gettop(L);
  ssize_t n;
  if (t->stream) {
    if (!buf_reserve(&t->rbuf, READ_CHUNK)) return luaL_error(L, "not enough memory");
    n = io_read(t, t->rbuf.p + t->rbuf.off + t->rbuf.len, READ_CHUNK);
    if (n > 0) {
      t->rbuf.len += (size_t)n;
      if (t->rbuf.len > t->limit) {
        t->rpaused = 1;
        update_reading(t);
      }
      wake(L, tidx, UV_RWAIT, 0);
      return 0;
    }
  } else if (t->kind == AL_TR_DGRAM) {
    return dgram_read(L, t, tidx);
  } else {
    char buf[READ_CHUNK];
    n = io_read(t, buf, sizeof buf);
    if (n > 0) {
      lua_pushlstring(L, buf, (size_t)n);
      proto_call(L, t, tidx, "data_received", 1);
      return 0;
    }
  }
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) io_error(L, t, tidx, errno, "recv");
    return 0;
  }
  /* EOF. A protocol returning true from eof_received keeps the transport half-open; streams
     always do (the writer may still write). */
  t->read_eof = 1;
  update_reading(t);
  if (t->stream) {
    wake(L, tidx, UV_RWAIT, 0);
    return 0;
  }
  if (proto_call(L, t, tidx, "eof_received", 0) == 0 && (!lua_toboolean(L, -1) || t->kind == AL_TR_PIPE) &&
      !t->closing) { /* a read pipe closes at EOF whatever the protocol says */
    t->closing = 1;
    if (t->wbuf.len == 0) force_close(L, t, tidx, 0);
  }
  return 0;
}

/* Runs fn(t) from a libev callback under a protected call; a failure aborts the transport. */
static void run_protected(al_Transport *t, lua_CFunction fn) {
  lua_State *L = t->loop->L;
  if (!L) return;
  int top = lua_gettop(L);
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
      push_tr(L, t);
      lua_setfield(L, -2, "transport");
    }
    al_report(L, t->loop, -1);
    if (!t->finished) {
      push_tr(L, t);
      force_close(L, t, -1, err);
    }
  }
  lua_settop(L, top);
}

static void read_cb(struct ev_loop *ev, ev_io *w, int revents) {
  (void)ev, (void)revents;
  run_protected(w->data, read_ready);
}

/* ---------------------------------------------------------------------------------------- */
/* Writing. */

static void shutdown_write(lua_State *L, al_Transport *t, int tidx) {
  if (t->eof_sent) return;
  t->eof_sent = 1;
  if (t->kind == AL_TR_PIPE) { /* a pipe has no half-close: write_eof closes it */
    t->closing = 1;
    force_close(L, t, tidx, 0);
    return;
  }
  if (shutdown(t->fd, SHUT_WR) < 0 && errno != ENOTCONN) io_error(L, t, tidx, errno, "shutdown");
}

static int write_ready(lua_State *L) {
  al_Transport *t = lua_touserdata(L, 1);
  push_tr(L, t);
  int tidx = lua_gettop(L);
  if (t->kind == AL_TR_DGRAM) {
    if (dgram_flush(L, t, tidx)) return 0;
  } else {
    ssize_t n = io_write(t, t->wbuf.p + t->wbuf.off, t->wbuf.len);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) io_error(L, t, tidx, errno, "send");
      return 0;
    }
    buf_consume(&t->wbuf, (size_t)n);
    if (t->wbuf.len > 0) return 0;
  }
  al_watch_stop(t->loop, &t->wio);
  maybe_resume(L, t, tidx);
  if (t->closing) force_close(L, t, tidx, 0);
  else if (t->eof_req) shutdown_write(L, t, tidx);
  return 0;
}

static void write_cb(struct ev_loop *ev, ev_io *w, int revents) {
  (void)ev, (void)revents;
  run_protected(w->data, write_ready);
}

static int check_writable(lua_State *L, al_Transport *t) {
  if (t->eof_req) return al_error_raise(L, "InvalidStateError", "Cannot call write() after write_eof()");
  if (t->closing) return al_error_raise(L, "InvalidStateError", "write() on a closing transport");
  return 0;
}

/*
** Sends the n pieces now as far as the socket takes them (writev, only when nothing is queued,
** so order is kept) and queues the rest. Raises nothing on I/O errors: the connection is lost.
*/
static void write_iov(lua_State *L, al_Transport *t, int tidx, struct iovec *iov, int n) {
  size_t total = 0;
  for (int i = 0; i < n; i++) total += iov[i].iov_len;
  if (total == 0) return;
  size_t sent = 0;
  if (t->wbuf.len == 0) {
    ssize_t r;
    if (n == 1) r = io_write(t, iov[0].iov_base, iov[0].iov_len);
    else do r = writev(t->fd, iov, n);
      while (r < 0 && errno == EINTR);
    if (r < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        io_error(L, t, tidx, errno, "send");
        return;
      }
      r = 0;
    }
    sent = (size_t)r;
    if (sent == total) return;
  }
  if (!buf_reserve(&t->wbuf, total - sent)) luaL_error(L, "not enough memory");
  for (int i = 0; i < n; i++) {
    size_t len = iov[i].iov_len;
    if (sent >= len) {
      sent -= len;
      continue;
    }
    memcpy(t->wbuf.p + t->wbuf.off + t->wbuf.len, (char *)iov[i].iov_base + sent, len - sent);
    t->wbuf.len += len - sent;
    sent = 0;
  }
  al_watch_start(t->loop, &t->wio);
  maybe_pause(L, t, tidx);
}

static int tr_write(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  if (t->kind == AL_TR_DGRAM) return luaL_error(L, "aloop: datagram transports use sendto()");
  struct iovec iov;
  iov.iov_base = (void *)luaL_checklstring(L, 2, &iov.iov_len);
  check_writable(L, t);
  write_iov(L, t, 1, &iov, 1);
  return 0;
}

static int tr_writelines(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  check_writable(L, t);
  lua_Integer n = luaL_len(L, 2);
  struct iovec iov[MAX_IOV];
  for (lua_Integer i = 1; i <= n;) {
    int k = 0;
    for (; k < MAX_IOV && i <= n; k++, i++) {
      lua_rawgeti(L, 2, i);
      iov[k].iov_base = (void *)luaL_checklstring(L, -1, &iov[k].iov_len);
    } /* the strings stay referenced by the list while we write */
    lua_pop(L, k);
    write_iov(L, t, 1, iov, k);
    if (t->closing) break;
  }
  return 0;
}

static int tr_write_eof(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  if (t->closing || t->eof_req) return 0;
  t->eof_req = 1;
  if (t->wbuf.len == 0) shutdown_write(L, t, 1);
  return 0;
}

static int tr_can_write_eof(lua_State *L) {
  lua_pushboolean(L, check_tr(L, 1)->kind != AL_TR_DGRAM);
  return 1;
}

/* close(): stop reading; connection_lost(nil) follows once the buffered data is sent. */
static int tr_close(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  if (t->closing) return 0;
  t->closing = 1;
  update_reading(t);
  if (t->wbuf.len == 0) force_close(L, t, 1, 0);
  return 0;
}

static int tr_abort(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  force_close(L, t, 1, 0);
  return 0;
}

static int tr_is_closing(lua_State *L) {
  lua_pushboolean(L, check_tr(L, 1)->closing);
  return 1;
}

static int tr_pause_reading(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  t->reading = 0;
  update_reading(t);
  return 0;
}

static int tr_resume_reading(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  t->reading = 1;
  update_reading(t);
  return 0;
}

static int tr_is_reading(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  lua_pushboolean(L, t->reading && !t->closing);
  return 1;
}

/* set_write_buffer_limits(high, low): defaults 64 KiB and high/4, as asyncio. */
static int tr_set_write_buffer_limits(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  lua_Integer high, low;
  if (lua_isnoneornil(L, 2)) {
    low = luaL_optinteger(L, 3, 16384);
    high = lua_isnoneornil(L, 3) ? 65536 : 4 * low;
  } else {
    high = luaL_checkinteger(L, 2);
    low = luaL_optinteger(L, 3, high / 4);
  }
  if (!(high >= low && low >= 0))
    return luaL_error(L, "aloop: high (%d) must be >= low (%d) must be >= 0", (int)high, (int)low);
  t->high = (size_t)high;
  t->low = (size_t)low;
  maybe_pause(L, t, 1);
  maybe_resume(L, t, 1);
  return 0;
}

static int tr_get_write_buffer_limits(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  lua_pushinteger(L, (lua_Integer)t->low);
  lua_pushinteger(L, (lua_Integer)t->high);
  return 2;
}

static int tr_get_write_buffer_size(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_tr(L, 1)->wbuf.len);
  return 1;
}

/* get_extra_info(name [, default]): "peername", "sockname", "socket". */
static int tr_get_extra_info(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  const char *name = luaL_checkstring(L, 2);
  lua_settop(L, 3);
  if (strcmp(name, t->kind == AL_TR_PIPE ? "pipe" : "socket") == 0) {
    lua_getiuservalue(L, 1, UV_SOCK);
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
  check_tr(L, 1);
  lua_getiuservalue(L, 1, UV_PROTO);
  return 1;
}

static int tr_set_protocol(lua_State *L) {
  check_tr(L, 1);
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, UV_PROTO);
  return 0;
}

static int tr_get_loop(lua_State *L) {
  check_tr(L, 1);
  lua_getiuservalue(L, 1, UV_LOOP);
  return 1;
}

static int tr_tostring(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  lua_pushfstring(L, "<aloop.Transport fd=%d%s%s>", t->fd, t->closing ? " closing" : "",
                  t->finished ? " closed" : "");
  return 1;
}

static int tr_gc(lua_State *L) {
  al_Transport *t = lua_touserdata(L, 1);
  buf_free(&t->wbuf);
  buf_free(&t->rbuf);
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Stream mode: the StreamReader's buffer and the futures tasks wait on (streams.lua). */

/* tr:_set_stream(limit): received data goes to the C read buffer from now on. */
static int tr_set_stream(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  lua_Integer limit = luaL_optinteger(L, 2, 65536);
  luaL_argcheck(L, limit > 0, 2, "limit must be positive");
  t->stream = 1;
  t->limit = (size_t)limit;
  return 0;
}

/* Raises the error the connection was lost with, if any. */
static void check_exc(lua_State *L) {
  if (lua_getiuservalue(L, 1, UV_EXC) != LUA_TNIL) lua_error(L);
  lua_pop(L, 1);
}

/* Pushes n bytes from the front of the read buffer and consumes them. */
static void take(lua_State *L, al_Transport *t, size_t n) {
  lua_pushlstring(L, t->rbuf.p + t->rbuf.off, n);
  buf_consume(&t->rbuf, n);
  if (t->rpaused && t->rbuf.len <= t->limit) {
    t->rpaused = 0;
    update_reading(t);
  }
}

/* tr:_read(n): up to n bytes ("" at EOF), or nil when the task must wait. */
static int tr_sread(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  check_exc(L);
  if (n == 0) lua_pushliteral(L, "");
  else if (t->rbuf.len > 0) take(L, t, (size_t)n < t->rbuf.len ? (size_t)n : t->rbuf.len);
  else if (t->read_eof) lua_pushliteral(L, "");
  else lua_pushnil(L);
  return 1;
}

static int raise_incomplete(lua_State *L, al_Transport *t, lua_Integer expected) {
  take(L, t, t->rbuf.len);
  int partial = lua_gettop(L);
  al_error_push(L, "IncompleteReadError",
                lua_pushfstring(L, "%d bytes read on a total of %s expected bytes",
                                (int)lua_rawlen(L, partial),
                                expected < 0 ? "undefined" : lua_tostring(L, 3)));
  lua_pushvalue(L, partial);
  lua_setfield(L, -2, "partial");
  if (expected >= 0) {
    lua_pushinteger(L, expected);
    lua_setfield(L, -2, "expected");
  }
  return lua_error(L);
}

/* tr:_readexactly(n): n bytes, nil to wait; IncompleteReadError at EOF. */
static int tr_sreadexactly(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n >= 0, 2, "readexactly size can not be less than zero");
  lua_settop(L, 2);
  lua_pushvalue(L, 2); /* index 3: n as text for the message */
  lua_tostring(L, 3);
  check_exc(L);
  if ((size_t)n <= t->rbuf.len) take(L, t, (size_t)n);
  else if (t->read_eof) return raise_incomplete(L, t, n);
  else lua_pushnil(L);
  return 1;
}

static int raise_overrun(lua_State *L, const char *msg, size_t consumed) {
  al_error_push(L, "LimitOverrunError", msg);
  lua_pushinteger(L, (lua_Integer)consumed);
  lua_setfield(L, -2, "consumed");
  return lua_error(L);
}

/*
** tr:_readuntil(sep, readline): the data up to and including sep, or nil to wait.
** Over the limit: LimitOverrunError (.consumed); readuntil leaves the buffer as it was, readline
** drops the overlong line (up to its "\n" when there is one) so the stream stays usable.
** At EOF without sep: readuntil raises IncompleteReadError, readline returns what is left.
*/
static int tr_sreaduntil(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  size_t slen;
  const char *sep = luaL_checklstring(L, 2, &slen);
  int readline = lua_toboolean(L, 3);
  luaL_argcheck(L, slen > 0, 2, "Separator should be at least one-byte string");
  check_exc(L);
  const char *data = t->rbuf.p + t->rbuf.off;
  const char *hit = t->rbuf.len ? memmem(data, t->rbuf.len, sep, slen) : NULL;
  if (hit) {
    size_t i = (size_t)(hit - data);
    if (i > t->limit) {
      if (readline) buf_consume(&t->rbuf, i + slen), take(L, t, 0);
      return raise_overrun(L, "Separator is found, but chunk is longer than limit", i);
    }
    take(L, t, i + slen);
    return 1;
  }
  if (t->rbuf.len + 1 > slen && t->rbuf.len + 1 - slen > t->limit) {
    size_t consumed = t->rbuf.len + 1 - slen;
    if (readline) buf_consume(&t->rbuf, t->rbuf.len), take(L, t, 0);
    return raise_overrun(L, "Separator is not found, and chunk exceed the limit", consumed);
  }
  if (!t->read_eof) {
    lua_pushnil(L);
    return 1;
  }
  if (readline) {
    take(L, t, t->rbuf.len);
    return 1;
  }
  lua_settop(L, 2);
  lua_pushnil(L);
  return raise_incomplete(L, t, -1);
}

static int tr_sat_eof(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  lua_pushboolean(L, t->read_eof && t->rbuf.len == 0);
  return 1;
}

static int tr_sbuffered(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_tr(L, 1)->rbuf.len);
  return 1;
}

/* Pushes the future in slot (creating it when there is none). */
static void push_waiter(lua_State *L, al_Transport *t, int slot) {
  if (lua_getiuservalue(L, 1, slot) == LUA_TUSERDATA) return;
  lua_pop(L, 1);
  lua_getiuservalue(L, 1, UV_LOOP);
  al_future_new(L, t->loop, -1);
  lua_remove(L, -2);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 1, slot);
}

/* tr:_wait_read(): the future to await for more data (reading resumes if it was paused). */
static int tr_swait_read(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  check_exc(L);
  if (t->read_eof) return 0;
  if (lua_getiuservalue(L, 1, UV_RWAIT) == LUA_TUSERDATA)
    return al_error_raise(L, "Error", "another task is already waiting for incoming data");
  if (t->rpaused) {
    t->rpaused = 0;
    update_reading(t);
  }
  push_waiter(L, t, UV_RWAIT);
  return 1;
}

/* tr:_drain(): nil when the write buffer is under the high-water mark, else the future that
   resume_writing completes (shared by every task draining). Raises once the connection is lost. */
static int tr_sdrain(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  if (t->lost) {
    check_exc(L);
    return al_error_raise(L, "ConnectionResetError", "Connection lost");
  }
  if (!t->wpaused) return 0;
  push_waiter(L, t, UV_DRAIN);
  return 1;
}

/* tr:_wait_closed(): nil once the fd is closed, else a future completed then. */
static int tr_swait_closed(lua_State *L) {
  al_Transport *t = check_tr(L, 1);
  if (t->finished) return 0;
  push_waiter(L, t, UV_CLOSED);
  return 1;
}

static int tr_sexception(lua_State *L) {
  check_tr(L, 1);
  lua_getiuservalue(L, 1, UV_EXC);
  return 1;
}

/* ---------------------------------------------------------------------------------------- */

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
  al_Transport *t = lua_newuserdatauv(L, sizeof *t, UV_N);
  memset(t, 0, sizeof *t);
  t->ref = LUA_NOREF;
  t->hdr.shutdown = tr_shutdown;
  t->loop = loop;
  t->fd = s->fd;
  t->kind = (unsigned char)(kind == AL_TR_DGRAM_CONNECTED ? AL_TR_DGRAM : kind);
  t->dgram_connected = kind == AL_TR_DGRAM_CONNECTED;
  t->family = s->family;
  t->reading = 1;
  t->high = 65536;
  t->low = 16384;
  t->limit = 65536;
  if (kind == AL_TR_SOCK && (s->family == AF_INET || s->family == AF_INET6)) {
    int one = 1; /* as asyncio: no Nagle delay on TCP transports */
    setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ev_io_init(&t->rio, read_cb, t->fd, EV_READ);
  ev_io_init(&t->wio, write_cb, t->fd, EV_WRITE);
  t->rio.data = t->wio.data = t;
  luaL_setmetatable(L, AL_TRANSPORT_MT);
  int tidx = lua_gettop(L);
  lua_pushvalue(L, protoidx);
  lua_setiuservalue(L, tidx, UV_PROTO);
  lua_pushvalue(L, sockidx);
  lua_setiuservalue(L, tidx, UV_SOCK);
  lua_pushvalue(L, loopidx);
  lua_setiuservalue(L, tidx, UV_LOOP);
  lua_pushvalue(L, tidx);
  t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  al_resource_add(L, loop, tidx);
  lua_pushvalue(L, tidx);
  proto_call(L, t, tidx, "connection_made", 1);
  lua_pop(L, 1);
  update_reading(t);
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
    {"write", tr_write},
    {"sendto", tr_sendto},
    {"writelines", tr_writelines},
    {"write_eof", tr_write_eof},
    {"can_write_eof", tr_can_write_eof},
    {"close", tr_close},
    {"abort", tr_abort},
    {"is_closing", tr_is_closing},
    {"pause_reading", tr_pause_reading},
    {"resume_reading", tr_resume_reading},
    {"is_reading", tr_is_reading},
    {"set_write_buffer_limits", tr_set_write_buffer_limits},
    {"get_write_buffer_limits", tr_get_write_buffer_limits},
    {"get_write_buffer_size", tr_get_write_buffer_size},
    {"get_extra_info", tr_get_extra_info},
    {"get_protocol", tr_get_protocol},
    {"set_protocol", tr_set_protocol},
    {"get_loop", tr_get_loop},
    {"_set_stream", tr_set_stream},
    {"_read", tr_sread},
    {"_readexactly", tr_sreadexactly},
    {"_readuntil", tr_sreaduntil},
    {"_at_eof", tr_sat_eof},
    {"_buffered", tr_sbuffered},
    {"_wait_read", tr_swait_read},
    {"_drain", tr_sdrain},
    {"_wait_closed", tr_swait_closed},
    {"_exception", tr_sexception},
    {NULL, NULL},
};

/* STACK: module, loop metatable, loop methods. */
void al_transport_open(lua_State *L) {
  if (luaL_newmetatable(L, AL_TRANSPORT_MT)) {
    luaL_newlibtable(L, tr_methods);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, tr_methods, 1); /* upvalue 1: the metatable (check_tr) */
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, tr_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, tr_close, 1);
    lua_setfield(L, -2, "__close");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, tr_tostring, 1);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_transport);
  lua_setfield(L, -4, "_transport");
}
