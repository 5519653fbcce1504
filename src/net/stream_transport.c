/*
** Stream transports: stream sockets (TCP, Unix, socketpairs, accepted sockets) and pipes
** (connect_read_pipe/connect_write_pipe, a subprocess's pipes), with asyncio semantics: write()
** never blocks (what the socket does not take now waits in the write buffer, flushed with
** writev/send when writable), close() flushes then closes, abort() discards, write_eof()
** half-closes, high/low water marks drive pause_writing/resume_writing, and the protocol (a Lua
** table) is called from the libev callback under protection. In stream mode (streams.lua) no
** protocol is called: received bytes go to a reader (stream_reader.c) that tasks read from.
** A filter (TLS) can sit between the fd and the reader or protocol: see transport.h. The object
** and its lifecycle are transport.c's.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/transport.h"

#define MAX_IOV 64
#define DEFAULT_LIMIT 65536 /* the reader's default limit, as asyncio's */

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

/* An I/O error on the fd: the connection is lost with an OSError for errno err. */
static void io_error(lua_State *L, al_Transport *t, int tidx, int err, const char *what) {
  al_oserror_push(L, err, what);
  al_transport_force_close(L, t, tidx, -1);
  lua_pop(L, 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Reading. */

int al_stream_wants_data(const al_Transport *t) {
  return t->reading && !t->closing && !(t->reader && t->reader->full);
}

void al_stream_deliver(lua_State *L, al_Transport *t, int tidx, const char *p, size_t n) {
  if (t->reader) {
    al_reader_feed(L, t->reader, p, n);
    if (t->reader->full) al_transport_update_reading(t);
    return;
  }
  lua_pushlstring(L, p, n);
  al_transport_proto_call(L, t, tidx, "data_received", 1);
  lua_pop(L, 1);
}

static void begin_close(lua_State *L, al_Transport *t, int tidx);

/* A protocol returning true from eof_received keeps the transport half-open; a reader's
   socket transport stays open too (the writer may still write) unless _close_at_eof() was
   called. A read pipe closes at EOF. */
void al_stream_eof(lua_State *L, al_Transport *t, int tidx) {
  t->read_eof = 1;
  al_transport_update_reading(t);
  if (t->reader) {
    al_reader_end(L, t->reader);
    if ((t->kind == AL_TR_PIPE || t->close_at_eof) && !t->closing) begin_close(L, t, tidx);
    return;
  }
  int keep = al_transport_proto_call(L, t, tidx, "eof_received", 0) == 0 && lua_toboolean(L, -1) &&
             t->kind != AL_TR_PIPE; /* a read pipe closes at EOF whatever the protocol says */
  lua_pop(L, 1);
  if (!keep && !t->closing) begin_close(L, t, tidx);
}

/* With a filter: the fd's bytes go to its input(), its EOF to its eof(). */
static int filter_read(lua_State *L, al_Transport *t, int tidx) {
  char buf[AL_READ_CHUNK];
  ssize_t n = io_read(t, buf, sizeof buf);
  if (n > 0) {
    t->filter->ops->input(L, t, tidx, buf, (size_t)n);
  } else if (n == 0) {
    t->read_eof = 1;
    al_transport_update_reading(t);
    if (t->filter->ops->eof) t->filter->ops->eof(L, t, tidx);
    else al_stream_eof(L, t, tidx);
  } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
    io_error(L, t, tidx, errno, "recv");
  }
  al_stream_flush(L, t, tidx);
  return 0;
}

static int read_ready(lua_State *L) {
  al_Transport *t = lua_touserdata(L, 1);
  al_transport_push(L, t);
  int tidx = lua_gettop(L);
  if (t->filter) return filter_read(L, t, tidx);
  ssize_t n;
  if (t->reader) { /* straight into the reader's buffer */
    al_Reader *r = t->reader;
    n = io_read(t, al_reader_space(L, r, AL_READ_CHUNK), AL_READ_CHUNK);
    if (n > 0) {
      al_reader_commit(L, r, (size_t)n);
      if (r->full) al_transport_update_reading(t);
      return 0;
    }
  } else {
    char buf[AL_READ_CHUNK];
    n = io_read(t, buf, sizeof buf);
    if (n > 0) {
      al_stream_deliver(L, t, tidx, buf, (size_t)n);
      return 0;
    }
  }
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) io_error(L, t, tidx, errno, "recv");
    return 0;
  }
  al_stream_eof(L, t, tidx);
  return 0;
}

void al_stream_read_cb(struct ev_loop *ev, ev_io *w, int revents) {
  (void)ev, (void)revents;
  al_transport_run(w->data, read_ready, "read");
}

/* The ready callback that lets a filter deliver what it held once the consumer wants data. */
static int pump_ready(lua_State *L) {
  al_Transport *t = lua_touserdata(L, 1);
  al_transport_push(L, t);
  int tidx = lua_gettop(L);
  t->pump_queued = 0;
  if (!t->filter || !t->filter->held || t->lost || !al_stream_wants_data(t)) return 0;
  t->filter->held = 0;
  t->filter->ops->input(L, t, tidx, NULL, 0);
  al_stream_flush(L, t, tidx);
  return 0;
}

static int call_pump(lua_State *L) {
  al_Transport *t = lua_touserdata(L, 1);
  if (!t->finished) al_transport_run(t, pump_ready, "filter");
  return 0;
}

/* The consumer wants data again (a reader has room, resume_reading()): read the fd, and let a
   filter that held data deliver it (from the ready queue, never inside a reader's method). */
static void resume_input(lua_State *L, void *source) {
  al_Transport *t = source;
  al_transport_update_reading(t);
  if (!t->filter || !t->filter->held || t->pump_queued || t->lost) return;
  t->pump_queued = 1;
  lua_pushcfunction(L, call_pump);
  al_transport_push(L, t);
  al_handle_new(L, t->loop, -2, 1, 0);
  al_ready_push(L, t->loop);
  lua_pop(L, 2);
}

/* ---------------------------------------------------------------------------------------- */
/* Writing. */

static void shutdown_write(lua_State *L, al_Transport *t, int tidx) {
  if (t->eof_sent) return;
  t->eof_sent = 1;
  if (t->kind == AL_TR_PIPE) { /* a pipe has no half-close: write_eof closes it */
    t->closing = 1;
    al_transport_force_close(L, t, tidx, 0);
    return;
  }
  if (shutdown(t->fd, SHUT_WR) < 0 && errno != ENOTCONN) io_error(L, t, tidx, errno, "shutdown");
}

/* The write buffer is empty: the writer may resume; a close or write_eof waiting on it ends. */
static void write_done(lua_State *L, al_Transport *t, int tidx) {
  al_transport_maybe_resume(L, t, tidx);
  if (t->closing) {
    if (!t->filter_closing) al_transport_force_close(L, t, tidx, 0);
  } else if (t->eof_req) {
    shutdown_write(L, t, tidx);
  }
}

static int write_ready(lua_State *L) {
  al_Transport *t = lua_touserdata(L, 1);
  al_transport_push(L, t);
  int tidx = lua_gettop(L);
  ssize_t n = io_write(t, al_buf_data(&t->wbuf), t->wbuf.len);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) io_error(L, t, tidx, errno, "send");
    return 0;
  }
  al_buf_consume(&t->wbuf, (size_t)n);
  if (t->wbuf.len > 0) return 0;
  al_watch_stop(t->loop, &t->wio);
  write_done(L, t, tidx);
  return 0;
}

void al_stream_write_cb(struct ev_loop *ev, ev_io *w, int revents) {
  (void)ev, (void)revents;
  al_transport_run(w->data, write_ready, "write");
}

void al_stream_flush(lua_State *L, al_Transport *t, int tidx) {
  if (t->lost) return;
  if (t->wbuf.len > 0 && !ev_is_active(&t->wio)) { /* nothing in flight: try now */
    ssize_t n = io_write(t, al_buf_data(&t->wbuf), t->wbuf.len);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        io_error(L, t, tidx, errno, "send");
        return;
      }
      n = 0;
    }
    al_buf_consume(&t->wbuf, (size_t)n);
    if (t->wbuf.len > 0) al_watch_start(t->loop, &t->wio);
  }
  if (t->wbuf.len == 0) write_done(L, t, tidx);
  else al_transport_maybe_pause(L, t, tidx);
}

/* Raises after write_eof(); returns 0 when the data is to be dropped (closing or lost). */
static int check_writable(lua_State *L, al_Transport *t) {
  if (t->eof_req)
    return al_error_raise(L, "InvalidStateError", "Cannot call write() after write_eof()");
  return !al_transport_drops_writes(L, t);
}

/*
** Sends the n pieces now as far as the socket takes them (writev, only when nothing is queued,
** so order is kept) and queues the rest. Raises nothing on I/O errors: the connection is lost.
** A filter turns them into what goes on the wire first.
*/
static void write_iov(lua_State *L, al_Transport *t, int tidx, struct iovec *iov, int n) {
  if (t->filter) {
    t->filter->ops->write(L, t, tidx, iov, n);
    al_stream_flush(L, t, tidx);
    return;
  }
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
  if (!al_buf_reserve(&t->wbuf, total - sent)) luaL_error(L, "not enough memory");
  for (int i = 0; i < n; i++) {
    size_t len = iov[i].iov_len;
    if (sent >= len) {
      sent -= len;
      continue;
    }
    memcpy(al_buf_tail(&t->wbuf), (char *)iov[i].iov_base + sent, len - sent);
    t->wbuf.len += len - sent;
    sent = 0;
  }
  al_watch_start(t->loop, &t->wio);
  al_transport_maybe_pause(L, t, tidx);
}

static int tr_write(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  if (t->kind == AL_TR_DGRAM) return luaL_error(L, "aloop: datagram transports use sendto()");
  struct iovec iov;
  iov.iov_base = (void *)luaL_checklstring(L, 2, &iov.iov_len);
  if (check_writable(L, t)) write_iov(L, t, 1, &iov, 1);
  return 0;
}

static int tr_writelines(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!check_writable(L, t)) return 0;
  lua_Integer n = luaL_len(L, 2);
  luaL_checkstack(L, MAX_IOV, "writelines");
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

/* A filter has no half-close (TLS): write_eof() is refused and can_write_eof() is false. */
static int tr_write_eof(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  if (t->closing || t->eof_req) return 0;
  if (t->filter)
    return al_error_raise(L, "Error", "write_eof() is not supported over %s", t->filter->ops->name);
  t->eof_req = 1;
  if (t->wbuf.len == 0) shutdown_write(L, t, 1);
  return 0;
}

static int tr_can_write_eof(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  lua_pushboolean(L, t->kind != AL_TR_DGRAM && !t->filter);
  return 1;
}

/* Closing: no more writes; a filter sends its closing bytes; connection_lost(nil) follows once
   the write buffer is flushed (and the filter is done). */
static void begin_close(lua_State *L, al_Transport *t, int tidx) {
  t->closing = 1;
  if (t->filter && t->filter->ops->close && !t->filter->ops->close(L, t, tidx))
    t->filter_closing = 1;
  al_transport_update_reading(t);
  al_stream_flush(L, t, tidx);
}

void al_stream_close_ready(lua_State *L, al_Transport *t, int tidx) {
  if (!t->filter_closing) return;
  t->filter_closing = 0;
  al_transport_update_reading(t);
  al_stream_flush(L, t, tidx);
}

static int tr_close(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  if (!t->closing) begin_close(L, t, 1);
  return 0;
}

/* tr:_close_at_eof(): nobody will write any more (a server handler returned without closing):
   close once the peer's EOF came, now if it came already. */
static int tr_close_at_eof(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  t->close_at_eof = 1;
  if (t->read_eof && !t->closing) begin_close(L, t, 1);
  return 0;
}

static int tr_pause_reading(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  t->reading = 0;
  al_transport_update_reading(t);
  return 0;
}

static int tr_resume_reading(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  t->reading = 1;
  resume_input(L, t);
  return 0;
}

/*
** tr:_read_rest(): the writer of this read pipe has exited (a subprocess's stdout or stderr once
** the child is reaped). What the pipe holds is read into the reader now, past the reader's limit,
** so that the EOF behind it closes the pipe: a finished process holds no fd and its output stays
** readable. Without this a reader nobody reads (a cancelled communicate(), output only waited
** for) stops at its limit, never sees the EOF and keeps the fd until the loop closes. At most the
** pipe's capacity is read: a grandchild still writing to an inherited write end cannot keep the
** loop here (the pipe then stays open until that EOF, as it must).
*/
static int tr_read_rest(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  if (t->kind != AL_TR_PIPE || !t->reader || t->filter || t->closing || t->read_eof) return 0;
  int cap = fcntl(t->fd, F_GETPIPE_SZ);
  size_t taken = 0, most = cap > 0 ? (size_t)cap : AL_READ_CHUNK;
  while (taken <= most && !t->closing) {
    ssize_t n = io_read(t, al_reader_space(L, t->reader, AL_READ_CHUNK), AL_READ_CHUNK);
    if (n > 0) {
      al_reader_commit(L, t->reader, (size_t)n);
      taken += (size_t)n;
    } else {
      if (n == 0) al_stream_eof(L, t, 1);
      else if (errno != EAGAIN && errno != EWOULDBLOCK) io_error(L, t, 1, errno, "read");
      return 0;
    }
  }
  al_transport_update_reading(t); /* no EOF yet: the reader's limit holds again */
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Stream mode and filters. */

/*
** tr:_reader([limit]): stream mode (streams.lua): received bytes go to a reader from now on and
** no protocol method is called. Returns the reader (made by the first call).
*/
static int tr_reader(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  if (t->kind == AL_TR_DGRAM) return luaL_error(L, "aloop: a datagram transport has no reader");
  if (t->reader) return lua_getiuservalue(L, 1, AL_TUV_READER), 1;
  lua_Integer limit = luaL_optinteger(L, 2, DEFAULT_LIMIT);
  luaL_argcheck(L, limit > 0, 2, "limit must be positive");
  lua_getiuservalue(L, 1, AL_TUV_LOOP);
  t->reader = al_reader_new(L, t->loop, -1, 1, (size_t)limit, resume_input, t);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 1, AL_TUV_READER);
  if (lua_getiuservalue(L, 1, AL_TUV_EXC) != LUA_TNIL) al_reader_fail(L, -2, -1);
  else if (t->read_eof || t->lost) al_reader_end(L, t->reader);
  lua_pop(L, 1);
  return 1;
}

void al_stream_set_filter(lua_State *L, al_Transport *t, int tidx, int fidx) {
  tidx = lua_absindex(L, tidx);
  lua_pushvalue(L, fidx);
  lua_setiuservalue(L, tidx, AL_TUV_FILTER);
  t->filter = lua_touserdata(L, fidx);
  al_Reader *r = t->reader;
  if (r && r->buf.len > 0) { /* start_tls: what the reader holds came on the wire already */
    al_Buf early = r->buf;
    memset(&r->buf, 0, sizeof r->buf);
    r->full = 0;
    al_transport_update_reading(t);
    t->filter->ops->input(L, t, tidx, al_buf_data(&early), early.len);
    al_buf_free(&early);
  }
  al_stream_flush(L, t, tidx);
}

/* ---------------------------------------------------------------------------------------- */

const luaL_Reg al_stream_methods[] = {
    {"write", tr_write},
    {"writelines", tr_writelines},
    {"write_eof", tr_write_eof},
    {"can_write_eof", tr_can_write_eof},
    {"close", tr_close},
    {"pause_reading", tr_pause_reading},
    {"resume_reading", tr_resume_reading},
    {"_reader", tr_reader},
    {"_close_at_eof", tr_close_at_eof},
    {"_read_rest", tr_read_rest},
    {NULL, NULL},
};
