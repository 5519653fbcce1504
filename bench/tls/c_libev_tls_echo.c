/*
** The limit for aloop's TLS echo: C on libev + OpenSSL, the shape of the peers' c_libev_echo.c
** with the SSL* on the fd (SSL_set_fd): the read callback drains SSL_read into a shared 64 KiB
** buffer and SSL_writes it back; only a write the socket does not take is kept, reading paused
** and a write watcher started. Full handshakes (no session cache, no tickets).
** Usage: c_libev_tls_echo CERTFILE KEYFILE PORT   (binds 127.0.0.1)
*/
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
  ev_io rio, wio;
  SSL *ssl;
  char *pend;
  size_t plen;
} conn_t;

static char buf[65536];
static SSL_CTX *ctx;

static void conn_close(struct ev_loop *loop, conn_t *c) {
  ev_io_stop(loop, &c->rio);
  ev_io_stop(loop, &c->wio);
  SSL_free(c->ssl);
  close(c->rio.fd);
  free(c->pend);
  free(c);
}

/* Writes p[0..n); keeps what the socket does not take. 0: ok, -1: the connection failed. */
static int send_all(struct ev_loop *loop, conn_t *c, const char *p, size_t n) {
  while (n > 0) {
    size_t done = 0;
    if (SSL_write_ex(c->ssl, p, n, &done)) {
      p += done;
      n -= done;
      continue;
    }
    int e = SSL_get_error(c->ssl, 0);
    if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) return -1;
    c->pend = malloc(n);
    memcpy(c->pend, p, n);
    c->plen = n;
    ev_io_stop(loop, &c->rio);
    ev_io_start(loop, &c->wio);
    return 0;
  }
  return 0;
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents) {
  (void)revents;
  conn_t *c = (conn_t *)((char *)w - offsetof(conn_t, wio));
  char *p = c->pend;
  size_t n = c->plen;
  c->pend = NULL;
  c->plen = 0;
  ev_io_stop(loop, &c->wio);
  int r = send_all(loop, c, p, n);
  free(p);
  if (r < 0) conn_close(loop, c);
  else if (!c->pend) ev_io_start(loop, &c->rio);
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents) {
  (void)revents;
  conn_t *c = (conn_t *)w;
  for (;;) {
    size_t n = 0;
    if (!SSL_read_ex(c->ssl, buf, sizeof buf, &n)) {
      int e = SSL_get_error(c->ssl, 0);
      if (e == SSL_ERROR_WANT_READ) return;
      if (e == SSL_ERROR_WANT_WRITE) { /* handshake bytes the socket did not take: rare */
        continue;
      }
      ERR_clear_error();
      conn_close(loop, c);
      return;
    }
    if (send_all(loop, c, buf, n) < 0) {
      conn_close(loop, c);
      return;
    }
    if (c->pend) return;
  }
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents) {
  (void)revents;
  for (;;) {
    int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn_t *c = calloc(1, sizeof *c);
    c->ssl = SSL_new(ctx);
    SSL_set_fd(c->ssl, fd);
    SSL_set_accept_state(c->ssl);
    ev_io_init(&c->rio, read_cb, fd, EV_READ);
    ev_io_init(&c->wio, write_cb, fd, EV_WRITE);
    ev_io_start(loop, &c->rio);
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: c_libev_tls_echo CERTFILE KEYFILE PORT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (!SSL_CTX_use_certificate_chain_file(ctx, argv[1]) ||
      !SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM)) {
    ERR_print_errors_fp(stderr);
    return 1;
  }
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 1024) < 0) {
    perror("bind/listen");
    return 1;
  }
  struct ev_loop *loop = ev_default_loop(EVBACKEND_EPOLL);
  ev_io lw;
  ev_io_init(&lw, accept_cb, s, EV_READ);
  ev_io_start(loop, &lw);
  ev_run(loop, 0);
  return 0;
}
