/*
** Load client for the TLS echo benchmark (C, epoll, one thread, OpenSSL on the fd).
**   tls_echo_client echo PORT CONNS SIZE SECONDS [WARMUP]: CONNS connections, each a closed loop
**     (write SIZE bytes, read all SIZE back, verify, repeat); prints round trips per second.
**   tls_echo_client hs PORT CONNS SECONDS [WARMUP]: CONNS handshakes in flight, each a new TCP
**     connection with a full TLS 1.3 handshake (no resumption), close_notify, close; prints
**     handshakes per second.
** The server's certificate is not verified (the cost measured is the server's).
*/
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  int fd;
  SSL *ssl;
  size_t got;
  int connected;
} conn_t;

static SSL_CTX *ctx;
static struct sockaddr_in addr;
static int ep;
static size_t size;
static char *payload, *rbuf;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_conn(conn_t *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) return -1;
  c->ssl = SSL_new(ctx);
  SSL_set_fd(c->ssl, c->fd);
  SSL_set_connect_state(c->ssl);
  c->connected = 0;
  c->got = 0;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void close_conn(conn_t *c) {
  SSL_shutdown(c->ssl);
  SSL_free(c->ssl);
  close(c->fd);
}

/* Writes the payload (the socket takes SIZE at once unless the server is far behind). */
static int send_payload(conn_t *c) {
  size_t off = 0;
  while (off < size) {
    size_t done = 0;
    if (SSL_write_ex(c->ssl, payload + off, size - off, &done)) {
      off += done;
      continue;
    }
    int e = SSL_get_error(c->ssl, 0);
    if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) return -1;
  }
  return 0;
}

/* Drives the handshake; 1 done, 0 in progress, -1 failed. */
static int step_handshake(conn_t *c) {
  int r = SSL_do_handshake(c->ssl);
  if (r == 1) return 1;
  int e = SSL_get_error(c->ssl, r);
  struct epoll_event ev = {.events = e == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN, .data.ptr = c};
  if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
    ERR_print_errors_fp(stderr);
    return -1;
  }
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: tls_echo_client echo PORT CONNS SIZE SECONDS [WARMUP]\n"
                    "       tls_echo_client hs PORT CONNS SECONDS [WARMUP]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int hs = strcmp(argv[1], "hs") == 0;
  int conns = atoi(argv[3]);
  size = hs ? 0 : (size_t)atoi(argv[4]);
  double secs = atof(argv[hs ? 4 : 5]);
  double warmup = argc > (hs ? 5 : 6) ? atof(argv[hs ? 5 : 6]) : 0.5;
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)atoi(argv[2]));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  payload = malloc(size + 1);
  rbuf = malloc(65536);
  for (size_t i = 0; i < size; i++) payload[i] = (char)('a' + i % 26);
  ep = epoll_create1(0);
  conn_t *cs = calloc((size_t)conns, sizeof *cs);
  for (int i = 0; i < conns; i++)
    if (open_conn(&cs[i]) < 0) {
      perror("connect");
      return 1;
    }
  double start = now(), t0 = start + warmup, end = t0 + secs;
  long count = 0, errors = 0;
  struct epoll_event evs[256];
  for (;;) {
    double t = now();
    if (t >= end) break;
    int n = epoll_wait(ep, evs, 256, 100);
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (!c->connected) {
        int r = step_handshake(c);
        if (r < 0) {
          errors++;
          close_conn(c);
          open_conn(c);
          continue;
        }
        if (r == 0) continue;
        c->connected = 1;
        if (hs) {
          if (now() >= t0) count++;
          close_conn(c);
          open_conn(c);
          continue;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        if (send_payload(c) < 0) return 1;
        continue;
      }
      for (;;) {
        size_t got = 0;
        if (!SSL_read_ex(c->ssl, rbuf, 65536, &got)) {
          int e = SSL_get_error(c->ssl, 0);
          if (e == SSL_ERROR_WANT_READ) break;
          fprintf(stderr, "read failed (%d)\n", e);
          return 1;
        }
        if (memcmp(rbuf, payload + c->got, got) != 0) {
          fprintf(stderr, "echo mismatch\n");
          return 1;
        }
        c->got += got;
        if (c->got == size) {
          c->got = 0;
          if (now() >= t0) count++;
          if (send_payload(c) < 0) return 1;
        }
      }
    }
  }
  double measured = now() - t0;
  printf("RESULT mode=%s conns=%d size=%zu rate=%.0f errors=%ld\n", hs ? "hs" : "echo", conns,
         size, count / measured, errors);
  return 0;
}
