/*
** Datagram transports (UDP, create_datagram_endpoint): the transport object of
** stream_transport.c with datagrams instead of a byte stream. Each read is one recvfrom that
** calls protocol:datagram_received(data, addr); sendto() sends at once when nothing is queued,
** else queues the datagram as a record (lengths, address, data) in the write buffer, flushed in
** order when the socket is writable. Errors go to protocol:error_received(err); the endpoint
** stays open.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "net/transport.h"

/* A queued datagram in the write buffer: this header, the address, then the data. */
typedef struct DgramHead {
  uint32_t len, addrlen;
} DgramHead;

static void dgram_error(lua_State *L, al_Transport *t, int tidx, int err, const char *what) {
  al_oserror_push(L, err, what);
  al_transport_proto_call(L, t, tidx, "error_received", 1);
  lua_pop(L, 1);
}

static int read_ready(lua_State *L) {
  al_Transport *t = lua_touserdata(L, 1);
  al_transport_push(L, t);
  int tidx = lua_gettop(L);
  char buf[AL_READ_CHUNK];
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
  al_transport_proto_call(L, t, tidx, "datagram_received", 2);
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
static int flush(lua_State *L, al_Transport *t, int tidx) {
  while (t->wbuf.len > 0 && !t->lost) {
    DgramHead h;
    char *rec = al_buf_data(&t->wbuf);
    memcpy(&h, rec, sizeof h);
    if (!dgram_send(L, t, tidx, rec + sizeof h + h.addrlen, h.len,
                    (struct sockaddr *)(rec + sizeof h), h.addrlen))
      return 1;
    al_buf_consume(&t->wbuf, sizeof h + h.addrlen + h.len);
  }
  return 0;
}

static int write_ready(lua_State *L) {
  al_Transport *t = lua_touserdata(L, 1);
  al_transport_push(L, t);
  int tidx = lua_gettop(L);
  if (flush(L, t, tidx)) return 0;
  al_watch_stop(t->loop, &t->wio);
  al_transport_maybe_resume(L, t, tidx);
  if (t->closing) al_transport_force_close(L, t, tidx, 0);
  return 0;
}

void al_dgram_read_cb(struct ev_loop *ev, ev_io *w, int revents) {
  (void)ev, (void)revents;
  al_transport_run(w->data, read_ready, "read");
}

void al_dgram_write_cb(struct ev_loop *ev, ev_io *w, int revents) {
  (void)ev, (void)revents;
  al_transport_run(w->data, write_ready, "write");
}

/* sendto(data [, addr]): addr may be left out when the endpoint has a remote address. */
static int tr_sendto(lua_State *L) {
  al_Transport *t = al_transport_check(L, 1);
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
  if (al_transport_drops_writes(L, t)) return 0;
  if (t->wbuf.len == 0 && dgram_send(L, t, 1, p, len, (struct sockaddr *)&ss, salen)) return 0;
  DgramHead h = {(uint32_t)len, (uint32_t)salen};
  if (!al_buf_reserve(&t->wbuf, sizeof h + salen + len)) return luaL_error(L, "not enough memory");
  char *q = al_buf_tail(&t->wbuf);
  memcpy(q, &h, sizeof h);
  memcpy(q + sizeof h, &ss, salen);
  memcpy(q + sizeof h + salen, p, len);
  t->wbuf.len += sizeof h + salen + len;
  al_watch_start(t->loop, &t->wio);
  al_transport_maybe_pause(L, t, 1);
  return 0;
}

/* Added to the transport's methods (with the metatable as upvalue 1, as the others). */
const luaL_Reg al_dgram_methods[] = {
    {"sendto", tr_sendto},
    {NULL, NULL},
};
