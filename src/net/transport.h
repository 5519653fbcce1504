/*
** Transports: the object stream transports (stream_transport.c: TCP, Unix, socketpairs, pipes)
** and datagram transports (datagram_transport.c: UDP) share, and the stream transport's filter
** seam, where TLS plugs in between the fd and the reader or protocol.
*/
#ifndef ALOOP_TRANSPORT_H
#define ALOOP_TRANSPORT_H

#include <sys/uio.h>

#include "net/net.h"
#include "net/stream_reader.h"
#include "util/buffer.h"

#define AL_READ_CHUNK 65536 /* bytes asked of the kernel per read */

/* Uservalue slots of a transport. */
enum {
  AL_TUV_PROTO = 1, /* the protocol */
  AL_TUV_SOCK,      /* the socket object (owns the fd) */
  AL_TUV_LOOP,      /* the loop userdata */
  AL_TUV_READER,    /* stream mode: the reader (al_Reader) received bytes go to */
  AL_TUV_FILTER,    /* the filter's userdata (keeps t->filter alive) */
  AL_TUV_DRAIN,     /* the futures of the tasks drain() holds, a list */
  AL_TUV_EXC,       /* the error the connection was lost with */
  AL_TUV_CLOSED,    /* the futures of the tasks in wait_closed(), a list */
  AL_TUV_N = AL_TUV_CLOSED
};

typedef struct al_StreamFilter al_StreamFilter;

#define AL_TRANSPORT_MAGIC 0x7472616eu /* "tran" (al_toudata) */

typedef struct al_Transport {
  al_Resource hdr;
  uint32_t magic; /* AL_TRANSPORT_MAGIC */
  ev_io rio, wio;
  al_Loop *loop;
  al_Reader *reader;        /* stream mode: received bytes go here; NULL: to data_received */
  al_StreamFilter *filter;  /* NULL: plain bytes */
  int fd;
  int ref; /* registry ref of the userdata until the fd is closed */
  unsigned char kind;     /* AL_TR_SOCK, AL_TR_PIPE or AL_TR_DGRAM */
  unsigned char reading;  /* not paused by the user */
  unsigned char closing;  /* close()/abort() called or the connection is lost: no more writes */
  unsigned char filter_closing; /* close() waits for the filter (al_stream_close_ready) */
  unsigned char eof_req;  /* write_eof() called */
  unsigned char eof_sent; /* shutdown(SHUT_WR) done */
  unsigned char read_eof; /* no more reading from the fd (the peer's EOF, or the filter's) */
  unsigned char lost;     /* connection_lost is scheduled or done */
  unsigned char finished; /* the fd is closed */
  unsigned char wpaused;  /* above the high-water mark (pause_writing was called) */
  unsigned char pump_queued;     /* a filter pump is in the ready queue */
  unsigned char dgram_connected; /* datagram socket with a remote address */
  unsigned char close_at_eof;    /* stream mode: nobody writes any more, close at the EOF */
  int family;
  unsigned dropped_writes; /* writes discarded after close or loss (a warning at the fifth) */
  al_Buf wbuf; /* bytes for the fd (datagrams: records, see datagram_transport.c) */
  size_t high, low;
  const char *proto_method; /* the protocol method called last (the slow-callback report) */
} al_Transport;

/*
** The filter seam of the stream transport. TLS (src/tls/) is a filter: it turns bytes read from
** the fd (ciphertext) into bytes for the reader or protocol (cleartext), and what the user writes
** (cleartext) into bytes appended straight to the transport's write buffer (ciphertext). All the
** rest stays the transport's: writev/EAGAIN/the write watcher, water marks, pause/resume, close,
** abort, connection_lost. Without a filter the hot paths pay one NULL check.
**
** How to write a filter:
** - Make a userdata whose memory starts with an al_StreamFilter whose ops point to your
**   al_StreamFilterOps, and install it with al_stream_set_filter (at connection_made, or later on
**   a live transport: start_tls; the bytes the reader already holds are fed to input() first).
** - input(): bytes read from the fd. Deliver what the consumer may take with al_stream_deliver
**   while al_stream_wants_data(t); when it stops wanting, keep the rest (in the BIO) and set
**   f->held: once the consumer wants data again the transport clears it and calls
**   input(L, t, tidx, NULL, 0) from the ready queue. Bytes for the peer (handshake records,
**   alerts, tickets) are appended to t->wbuf with al_buf_append; the transport flushes after
**   every op.
** - write(): cleartext from write()/writelines(). Append what goes on the wire to t->wbuf; what
**   cannot be encoded yet (the handshake is not done) is kept and counted in f->queued, which
**   the write-buffer size and the water marks include. When queued bytes become wire bytes
**   outside an op (a timer), append them and call al_stream_flush.
** - eof(): the fd reached EOF. Call al_stream_eof (a clean end: the peer's close_notify was
**   seen) or al_transport_force_close (truncation). NULL: al_stream_eof. A filter that sees its
**   own end of stream earlier (close_notify) calls al_stream_eof itself: reading the fd stops.
** - close(): close() was called (no more writes are accepted). Append the closing bytes
**   (close_notify) and return 1: the fd closes once the write buffer is flushed. Return 0 to
**   keep it open (queued cleartext waits for the handshake; reading goes on) until you call
**   al_stream_close_ready. abort() and fatal errors skip close().
** - On a fatal error (an aloop error object, e.g. SSLError) call al_transport_force_close with
**   it: the connection is lost with it (readers and drain() raise it, connection_lost(err));
**   report it first (al_report) if the user should hear of it. Do not raise from ops: a raise
**   is reported as "Fatal error on transport" and aborts the connection.
** - detach(): the fd is closed; free what you can now (no Lua calls). The userdata's own __gc
**   frees the rest. extra_info(): push a get_extra_info value and return 1, or return 0.
** Ops run inside the transport's protected libev callbacks (or write()), with the transport at
** tidx; they may call Lua (data_received runs through al_stream_deliver).
*/
typedef struct al_StreamFilterOps {
  const char *name;
  void (*input)(lua_State *L, al_Transport *t, int tidx, const char *p, size_t n);
  void (*write)(lua_State *L, al_Transport *t, int tidx, const struct iovec *iov, int n);
  void (*eof)(lua_State *L, al_Transport *t, int tidx);
  int (*close)(lua_State *L, al_Transport *t, int tidx);
  void (*detach)(al_StreamFilter *f);
  int (*extra_info)(lua_State *L, al_Transport *t, int tidx, const char *name);
} al_StreamFilterOps;

struct al_StreamFilter {
  const al_StreamFilterOps *ops;
  size_t queued;      /* bytes accepted by write() and not in t->wbuf yet */
  unsigned char held; /* input holds bytes the consumer did not want yet */
};

/* Installs the filter (userdata at fidx, memory starting with an al_StreamFilter). */
void al_stream_set_filter(lua_State *L, al_Transport *t, int tidx, int fidx);
/* Whether the consumer takes data now (not paused, reader not full, not closing). */
int al_stream_wants_data(const al_Transport *t);
/* Gives p[0..n) to the reader or to protocol:data_received. */
void al_stream_deliver(lua_State *L, al_Transport *t, int tidx, const char *p, size_t n);
/* The end of the stream: the reader ends, or protocol:eof_received() runs. Reading stops. */
void al_stream_eof(lua_State *L, al_Transport *t, int tidx);
/* Sends what t->wbuf holds now if it can, else leaves it to the write watcher; water marks. */
void al_stream_flush(lua_State *L, al_Transport *t, int tidx);
/* The filter is done closing (see close()): the fd closes once the write buffer is flushed. */
void al_stream_close_ready(lua_State *L, al_Transport *t, int tidx);
/* The connection is over: unsent data is dropped, connection_lost(exc) follows from the ready
   queue. With an error (eidx != 0) readers and drain() raise it. abort() is this with none. */
void al_transport_force_close(lua_State *L, al_Transport *t, int tidx, int eidx);

/* Write-buffer size as users see it: wire bytes plus what a filter still queues. */
static inline size_t al_transport_wsize(const al_Transport *t) {
  return t->wbuf.len + (t->filter ? t->filter->queued : 0);
}

/* transport.c: the object both kinds share. */
/* The transport at idx, or the one of the StreamWriter at idx, which then replaces it there. */
al_Transport *al_transport_check(lua_State *L, int idx);
void al_transport_push(lua_State *L, al_Transport *t);
void al_transport_update_reading(al_Transport *t); /* read watcher on or off, per the state */
/* Calls protocol:name(the nargs values on top) protected; leaves one result (nil when missing
   or failed); a failure is reported and aborts the connection. Returns 0, or -1 if it raised. */
int al_transport_proto_call(lua_State *L, al_Transport *t, int tidx, const char *name, int nargs);
/* Runs fn(t) from a libev callback: protected, timed in debug mode; `what` names the callback. */
void al_transport_run(al_Transport *t, lua_CFunction fn, const char *what);
void al_transport_maybe_pause(lua_State *L, al_Transport *t, int tidx);
void al_transport_maybe_resume(lua_State *L, al_Transport *t, int tidx);
int al_transport_drops_writes(lua_State *L, al_Transport *t); /* closing: drop (and warn) */

/* stream_transport.c and datagram_transport.c: their libev callbacks and methods. */
void al_stream_read_cb(struct ev_loop *ev, ev_io *w, int revents);
void al_stream_write_cb(struct ev_loop *ev, ev_io *w, int revents);
extern const luaL_Reg al_stream_methods[];
void al_dgram_read_cb(struct ev_loop *ev, ev_io *w, int revents);
void al_dgram_write_cb(struct ev_loop *ev, ev_io *w, int revents);
extern const luaL_Reg al_dgram_methods[];

#endif
