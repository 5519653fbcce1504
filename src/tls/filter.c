/*
** TLS as a filter of the stream transport (net/transport.h's seam). States as uvloop's SSL
** protocol: the handshake (writes are queued as cleartext and counted in the write-buffer size;
** a timer aborts it after handshake_timeout), wrapped (ciphertext in -> cleartext to the reader or
** data_received; cleartext out -> records appended to the write buffer), flushing (close() waits
** for the handshake to send queued cleartext) and shutdown (close_notify queued, the fd closes once
** the buffer is flushed or shutdown_timeout passes). core._tls_wrap puts a live transport into
** TLS mode: the connection calls, servers and start_tls use it (connections.lua).
*/
#include <errno.h>
#include <string.h>

#include "net/transport.h"
#include "tls/tls.h"

#define FILTER_MT "aloop.TlsFilter" /* internal: a transport's uservalue, never seen by Lua */
#define DECRYPT_CHUNK 65536
#define COALESCE 16384

enum { FUV_CONTEXT = 1, FUV_WAITER, FUV_PROTOCOL, FUV_N = FUV_PROTOCOL };

enum { ST_HANDSHAKE, ST_WRAPPED, ST_FLUSHING, ST_SHUTDOWN };

typedef struct al_TlsFilter {
  al_StreamFilter base; /* first: the transport sees this */
  al_TlsSession *session;
  al_Transport *t;
  al_Loop *loop;
  al_Buf pending; /* cleartext written before the handshake ended */
  ev_timer timer; /* handshake or shutdown timeout */
  double handshake_timeout, shutdown_timeout;
  unsigned char state;
  unsigned char server;
  unsigned char call_made; /* call connection_made on FUV_PROTOCOL after the handshake */
  unsigned char close_wanted; /* close() came during the handshake (flushing) */
} al_TlsFilter;

/* The session's sink: records go straight to the transport's write buffer. */
static int sink(void *ud, const char *p, size_t n) {
  al_TlsFilter *f = ud;
  return al_buf_append(&f->t->wbuf, p, n);
}

/* ---------------------------------------------------------------------------------------- */
/* Timers (a one-shot ev_timer counted as a watcher while active, as the listener's retry). */

static void timer_stop(al_TlsFilter *f) {
  if (!ev_is_active(&f->timer)) return;
  ev_timer_stop(f->loop->ev, &f->timer);
  f->loop->nwatchers--;
}

static void timer_start(al_TlsFilter *f, double after) {
  timer_stop(f);
  if (after <= 0) return; /* no limit */
  ev_timer_set(&f->timer, after, 0.);
  ev_timer_start(f->loop->ev, &f->timer);
  f->loop->nwatchers++;
}

/* Fails the transport with a new error of class cls (errno err) and message msg. */
static void fail_with(lua_State *L, al_Transport *t, int tidx, const char *cls, int err,
                      const char *msg) {
  al_error_push(L, cls, msg);
  lua_pushinteger(L, err);
  lua_setfield(L, -2, "errno");
  lua_pushstring(L, strerror(err));
  lua_setfield(L, -2, "strerror");
  al_transport_force_close(L, t, tidx, -1);
  lua_pop(L, 1);
}

/* Runs from al_transport_run (protected): the handshake or the shutdown took too long. */
static int timer_fire(lua_State *L) {
  al_Transport *t = lua_touserdata(L, 1);
  al_TlsFilter *f = (al_TlsFilter *)t->filter;
  if (!f || t->lost) return 0;
  al_transport_push(L, t);
  int tidx = lua_gettop(L);
  if (f->state == ST_HANDSHAKE || f->state == ST_FLUSHING)
    lua_pushfstring(L, "SSL handshake is taking longer than %f seconds: aborting the connection",
                    f->handshake_timeout);
  else
    lua_pushfstring(L, "SSL shutdown timed out after %f seconds: aborting the connection",
                    f->shutdown_timeout);
  fail_with(L, t, tidx, "ConnectionAbortedError", ECONNABORTED, lua_tostring(L, -1));
  return 0;
}

static void timer_cb(struct ev_loop *ev, ev_timer *w, int revents) {
  (void)ev, (void)revents;
  al_TlsFilter *f = w->data;
  f->loop->nwatchers--; /* a one-shot timer is inactive once it fired */
  if (!f->t->finished) al_transport_run(f->t, timer_fire, "TLS timeout");
}

/* ---------------------------------------------------------------------------------------- */
/* Steps. */

/* A TLS error ends the connection; the alert OpenSSL queued for the peer goes out first, as far
   as the socket takes it now, so the peer learns why. */
static void fail_session(lua_State *L, al_TlsFilter *f, al_Transport *t, int tidx) {
  al_stream_flush(L, t, tidx);
  if (t->lost) return;
  al_tls_push_error(L, f->session);
  if (f->state == ST_HANDSHAKE || f->state == ST_FLUSHING) {
    al_log(L, AL_LOG_DEBUG, "TLS handshake failed: %s", luaL_tolstring(L, -1, NULL));
    lua_pop(L, 1);
  }
  al_transport_force_close(L, t, tidx, -1);
  lua_pop(L, 1);
}

/*
** Completes the future the connection call waits on (FUV_WAITER). Failures reach that call
** through the transport's loss instead (connections.lua watches it), whatever their cause.
*/
static void wake_waiter(lua_State *L, int fidx) {
  if (lua_getiuservalue(L, fidx, FUV_WAITER) == LUA_TUSERDATA) {
    al_Future *fut = lua_touserdata(L, -1);
    if (fut->state == AL_PENDING) al_future_set_result(L, fut, -1, lua_gettop(L), 0);
    lua_pushnil(L);
    lua_setiuservalue(L, fidx, FUV_WAITER);
  }
  lua_pop(L, 1);
}

/* Queues close_notify behind everything written so far. */
static void send_close_notify(lua_State *L, al_TlsFilter *f, al_Transport *t, int tidx) {
  f->state = ST_SHUTDOWN;
  if (al_tls_close_notify(f->session) != 0) {
    fail_session(L, f, t, tidx);
    return;
  }
  timer_start(f, f->shutdown_timeout);
}

/*
** The handshake is done: queued cleartext goes out, the application's protocol takes the
** transport (connection_made when asked), the connection call returns.
*/
static void handshake_done(lua_State *L, al_TlsFilter *f, al_Transport *t, int tidx, int fidx) {
  timer_stop(f);
  int closing = f->state == ST_FLUSHING;
  f->state = ST_WRAPPED;
  if (f->pending.len > 0) {
    int r = al_tls_write(f->session, al_buf_data(&f->pending), f->pending.len);
    al_buf_free(&f->pending);
    f->base.queued = 0;
    if (r != 0) {
      fail_session(L, f, t, tidx);
      return;
    }
  }
  if (closing) {
    send_close_notify(L, f, t, tidx);
    if (!t->lost) al_stream_close_ready(L, t, tidx);
  }
  if (lua_getiuservalue(L, fidx, FUV_PROTOCOL) != LUA_TNIL) {
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, tidx, AL_TUV_PROTO);
    lua_pushnil(L);
    lua_setiuservalue(L, fidx, FUV_PROTOCOL);
    if (f->call_made && !t->lost) {
      lua_pushvalue(L, tidx);
      al_transport_proto_call(L, t, tidx, "connection_made", 1);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  wake_waiter(L, fidx);
}

/* Whether unread input (or a record OpenSSL holds) waits for the consumer. */
static int has_input(al_TlsFilter *f) {
  return al_tls_input_len(f->session) > 0 || SSL_has_pending(al_tls_ssl(f->session));
}

/*
** Moves the connection forward with the input it has: the handshake, then cleartext to the
** consumer while it wants data. What it does not want yet stays in the session (base.held).
*/
static void process(lua_State *L, al_TlsFilter *f, al_Transport *t, int tidx, int fidx) {
  if (f->state == ST_HANDSHAKE || f->state == ST_FLUSHING) {
    int r = al_tls_handshake(L, f->session);
    if (r == AL_TLS_FAILED) {
      fail_session(L, f, t, tidx);
      return;
    }
    if (r != AL_TLS_DONE) {
      al_tls_keep_input(f->session); /* all of it was read: frees a copy kept before */
      return;
    }
    handshake_done(L, f, t, tidx, fidx);
  }
  char buf[DECRYPT_CHUNK];
  size_t len = 0;
  int end = 0; /* 1: close_notify (anything after it is discarded), 2: a TLS error */
  while (!t->lost) {
    if (len == 0 && !al_stream_wants_data(t)) break;
    ptrdiff_t r = al_tls_read(L, f->session, buf + len, sizeof buf - len);
    if (r > 0) {
      len += (size_t)r;
      if (len < sizeof buf) continue;
    } else if (r == AL_TLS_EOF) {
      end = 1;
    } else if (r == AL_TLS_FAILED) {
      end = 2;
    }
    if (len > 0) al_stream_deliver(L, t, tidx, buf, len);
    len = 0;
    if (r <= 0) break; /* wants more input, or ended */
  }
  if (t->lost) return;
  if (end == 2) {
    fail_session(L, f, t, tidx);
    return;
  }
  if (end == 1) {
    f->base.held = 0;
    al_tls_drop_input(f->session);
    al_stream_eof(L, t, tidx);
    return;
  }
  f->base.held = has_input(f) ? 1 : 0;
  if (!al_tls_keep_input(f->session)) luaL_error(L, "not enough memory");
}

/* ---------------------------------------------------------------------------------------- */
/* The filter's ops. */

/* STACK helper: pushes the filter's userdata (the transport's AL_TUV_FILTER). */
static int push_filter(lua_State *L, int tidx) {
  lua_getiuservalue(L, tidx, AL_TUV_FILTER);
  return lua_gettop(L);
}

static void op_input(lua_State *L, al_Transport *t, int tidx, const char *p, size_t n) {
  al_TlsFilter *f = (al_TlsFilter *)t->filter;
  tidx = lua_absindex(L, tidx);
  if (p && n) al_tls_feed(f->session, p, n);
  int fidx = push_filter(L, tidx);
  process(L, f, t, tidx, fidx);
  lua_settop(L, fidx - 1);
}

/* Encrypts the pieces, small ones together (one record for many short writes). */
static void op_write(lua_State *L, al_Transport *t, int tidx, const struct iovec *iov, int n) {
  al_TlsFilter *f = (al_TlsFilter *)t->filter;
  if (f->state == ST_HANDSHAKE || f->state == ST_FLUSHING) {
    for (int i = 0; i < n; i++)
      if (!al_buf_append(&f->pending, iov[i].iov_base, iov[i].iov_len))
        luaL_error(L, "not enough memory");
    f->base.queued = f->pending.len;
    return;
  }
  char buf[COALESCE];
  size_t used = 0;
  int failed = 0;
  for (int i = 0; i < n && !failed; i++) {
    const char *p = iov[i].iov_base;
    size_t len = iov[i].iov_len;
    if (used + len <= sizeof buf) {
      memcpy(buf + used, p, len);
      used += len;
      continue;
    }
    if (used) failed = al_tls_write(f->session, buf, used) != 0;
    used = 0;
    if (failed) break;
    if (len >= sizeof buf) {
      failed = al_tls_write(f->session, p, len) != 0;
    } else {
      memcpy(buf, p, len);
      used = len;
    }
  }
  if (!failed && used) failed = al_tls_write(f->session, buf, used) != 0;
  if (failed) fail_session(L, f, t, lua_absindex(L, tidx));
}

/* The fd reached EOF: clean after the peer's close_notify, a truncation otherwise. */
static void op_eof(lua_State *L, al_Transport *t, int tidx) {
  al_TlsFilter *f = (al_TlsFilter *)t->filter;
  if (al_tls_received_close_notify(f->session)) {
    al_stream_eof(L, t, tidx);
    return;
  }
  int hs = f->state == ST_HANDSHAKE || f->state == ST_FLUSHING;
  fail_with(L, t, lua_absindex(L, tidx), "ConnectionResetError", ECONNRESET,
            hs ? "Connection lost during the TLS handshake"
               : "TLS connection closed by the peer without close_notify (data may be truncated)");
}

static int op_close(lua_State *L, al_Transport *t, int tidx) {
  al_TlsFilter *f = (al_TlsFilter *)t->filter;
  if (f->state == ST_HANDSHAKE) {
    if (f->pending.len == 0) return 1; /* nothing to say yet: just close */
    f->state = ST_FLUSHING;
    return 0;
  }
  if (f->state == ST_WRAPPED) send_close_notify(L, f, t, lua_absindex(L, tidx));
  return 1;
}

static void op_detach(al_StreamFilter *base) {
  al_TlsFilter *f = (al_TlsFilter *)base;
  timer_stop(f);
  al_buf_free(&f->pending);
  f->base.queued = 0;
}

static int op_extra_info(lua_State *L, al_Transport *t, int tidx, const char *name) {
  al_TlsFilter *f = (al_TlsFilter *)t->filter;
  if (strcmp(name, "sslcontext") == 0) {
    if (al_tls_push_sni_context(L, f->session)) return 1;
    push_filter(L, lua_absindex(L, tidx));
    lua_getiuservalue(L, -1, FUV_CONTEXT);
    lua_remove(L, -2);
    return 1;
  }
  return al_tls_push_info(L, f->session, name);
}

static const al_StreamFilterOps tls_ops = {
    "tls", op_input, op_write, op_eof, op_close, op_detach, op_extra_info,
};

static int filter_gc(lua_State *L) {
  al_TlsFilter *f = lua_touserdata(L, 1);
  al_tls_session_free(L, f->session);
  f->session = NULL;
  al_buf_free(&f->pending);
  return 0;
}

/* ---------------------------------------------------------------------------------------- */

static double opt_number(lua_State *L, int idx, const char *key, double def) {
  lua_getfield(L, idx, key);
  double v = luaL_optnumber(L, -1, def);
  lua_pop(L, 1);
  if (!(v >= 0)) luaL_error(L, "aloop: %s must be a number >= 0", key);
  return v;
}

/*
** core._tls_wrap(transport, ctx, server_side, opts [, protocol]) -> the handshake future
** (opts.waiter) or nil. opts: server_hostname, ssl_handshake_timeout (60), ssl_shutdown_timeout
** (30), connection_made (call protocol:connection_made once the handshake is done). protocol
** takes the transport when the handshake is done. A server shares one opts table.
*/
static int l_tls_wrap(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
  al_SslContext *ctx = al_sslcontext_check(L, 2);
  int server = lua_toboolean(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 5);
  if (t->closing || t->lost) return al_error_raise(L, "InvalidStateError", "the transport is closing");
  if (t->filter) return al_error_raise(L, "InvalidStateError", "the transport already uses TLS");
  if (ctx->server != server)
    return luaL_error(L, "aloop: a %s-side SSLContext is needed here", server ? "server" : "client");
  lua_getfield(L, 4, "server_hostname");
  const char *hostname = luaL_optstring(L, -1, NULL);
  double hs_timeout = opt_number(L, 4, "ssl_handshake_timeout", 60.0);
  double sd_timeout = opt_number(L, 4, "ssl_shutdown_timeout", 30.0);
  lua_getfield(L, 4, "connection_made");
  int call_made = lua_toboolean(L, -1);
  lua_getfield(L, 4, "waiter");
  int want_waiter = lua_toboolean(L, -1);
  lua_settop(L, 6); /* 6: hostname (kept referenced while the session copies it) */

  al_TlsFilter *f = lua_newuserdatauv(L, sizeof *f, FUV_N);
  memset(f, 0, sizeof *f);
  int fidx = lua_gettop(L);
  luaL_setmetatable(L, FILTER_MT);
  f->base.ops = &tls_ops;
  f->t = t;
  f->loop = t->loop;
  f->server = (unsigned char)server;
  f->call_made = (unsigned char)call_made;
  f->handshake_timeout = hs_timeout;
  f->shutdown_timeout = sd_timeout;
  ev_timer_init(&f->timer, timer_cb, 0., 0.);
  f->timer.data = f;
  f->session = al_tls_session_new(ctx, server, hostname, sink, f);
  if (!f->session) return al_tls_raise_error_queue(L, "creating the TLS session");
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, fidx, FUV_CONTEXT);
  lua_pushvalue(L, 5);
  lua_setiuservalue(L, fidx, FUV_PROTOCOL);
  if (want_waiter) {
    lua_getiuservalue(L, 1, AL_TUV_LOOP);
    al_future_new(L, t->loop, -1);
    lua_remove(L, -2);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, fidx, FUV_WAITER);
  } else {
    lua_pushnil(L);
  }
  int wait_idx = lua_gettop(L);
  timer_start(f, hs_timeout);
  al_stream_set_filter(L, t, 1, fidx); /* feeds what the reader held */
  if (!t->lost) {
    process(L, f, t, 1, fidx); /* a client's ClientHello */
    if (!t->lost) al_stream_flush(L, t, 1);
  }
  lua_pushvalue(L, wait_idx);
  return 1;
}

static const luaL_Reg filter_meta[] = {
    {"__gc", filter_gc},
    {NULL, NULL},
};

void al_tls_filter_open(lua_State *L, int core) {
  al_new_class(L, FILTER_MT, NULL, filter_meta);
  lua_pop(L, 2);
  lua_pushcfunction(L, l_tls_wrap);
  lua_setfield(L, core, "_tls_wrap");
}
