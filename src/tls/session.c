/*
** The per-connection TLS engine: one SSL* whose BIO reads the ciphertext the transport fed in
** (borrowed from the transport's read, copied only when a pause leaves some unread) and writes
** every record straight to a sink (the transport's write buffer). The sink never refuses, so
** OpenSSL never wants to write: only WANT_READ exists, and no state waits on the socket being
** writable (unlike TLS on the fd, where a read may need a write first). No Lua here except the
** servername callback, which the handshake and read steps reach through the running thread.
*/
#include <arpa/inet.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls/tls.h"

struct al_TlsSession {
  SSL *ssl;
  al_TlsSink sink;
  void *sink_ud;
  const char *in; /* unread ciphertext: borrowed from the feeder, or inside kept */
  size_t in_len;
  char *kept; /* input copied by al_tls_keep_input */
  size_t kept_cap;
  char *hostname;  /* the client's server_hostname, or NULL */
  lua_State *L;    /* the running Lua thread during a step (the servername callback uses it) */
  int sni_ref;     /* registry ref of the context the servername callback chose, or LUA_NOREF */
  int ssl_error;   /* SSL_get_error of the failed step */
  unsigned long err; /* the OpenSSL error code of the failed step (0: none) */
  unsigned char sink_failed; /* out of memory while appending to the write buffer */
};

/* ---------------------------------------------------------------------------------------- */
/* The BIO: reads the fed input, writes to the sink. */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_read(BIO *b, char *out, int len) {
  al_TlsSession *s = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (s->in_len == 0) {
    BIO_set_retry_read(b);
    return -1;
  }
  size_t n = (size_t)len < s->in_len ? (size_t)len : s->in_len;
  memcpy(out, s->in, n);
  s->in += n;
  s->in_len -= n;
  return (int)n;
}

static int bio_write(BIO *b, const char *p, int len) {
  al_TlsSession *s = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (len > 0 && !s->sink(s->sink_ud, p, (size_t)len)) {
    s->sink_failed = 1;
    return -1;
  }
  return len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)num, (void)ptr;
  al_TlsSession *s = BIO_get_data(b);
  switch (cmd) {
  case BIO_CTRL_FLUSH: return 1; /* everything is in the write buffer already */
  case BIO_CTRL_PENDING: return (long)(s->in_len > LONG_MAX ? LONG_MAX : s->in_len);
  case BIO_CTRL_WPENDING: return 0;
  default: return 0;
  }
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static void bio_method_free(void) {
  BIO_meth_free(bio_method);
  bio_method = NULL;
}

/* Made once per process, freed at exit (or when the library is unloaded, which comes after every
   Lua state using it is closed). */
static void bio_method_init(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "aloop transport");
  if (m && BIO_meth_set_read(m, bio_read) && BIO_meth_set_write(m, bio_write) &&
      BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create)) {
    bio_method = m;
    atexit(bio_method_free);
  } else if (m) {
    BIO_meth_free(m);
  }
}

/* ---------------------------------------------------------------------------------------- */

static int is_ip_literal(const char *host) {
  unsigned char addr[16];
  return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

/*
** Client identity: SNI unless the name is an IP literal; with check_hostname, the certificate
** must match the name (DNS names through SSL_set1_host, IP literals against IP SANs).
*/
static int set_client_identity(SSL *ssl, al_SslContext *ctx, const char *host) {
  if (!host || !*host) return 1;
  int ip = is_ip_literal(host);
  if (!ip && !SSL_set_tlsext_host_name(ssl, host)) return 0;
  if (!ctx->check_hostname) return 1;
  if (ip) return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return SSL_set1_host(ssl, host);
}

al_TlsSession *al_tls_session_new(al_SslContext *ctx, int server, const char *server_hostname,
                                  al_TlsSink sink, void *sink_ud) {
  pthread_once(&bio_once, bio_method_init);
  if (!bio_method) return NULL;
  al_TlsSession *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->sink = sink;
  s->sink_ud = sink_ud;
  s->sni_ref = LUA_NOREF;
  s->ssl = SSL_new(ctx->ctx);
  BIO *bio = s->ssl ? BIO_new(bio_method) : NULL;
  if (!bio) goto fail;
  BIO_set_data(bio, s);
  SSL_set_bio(s->ssl, bio, bio); /* takes the one reference */
  SSL_set_app_data(s->ssl, s);
  if (server) {
    SSL_set_accept_state(s->ssl);
  } else {
    SSL_set_connect_state(s->ssl);
    if (server_hostname && *server_hostname && !(s->hostname = strdup(server_hostname))) goto fail;
    if (!set_client_identity(s->ssl, ctx, server_hostname)) goto fail;
  }
  return s;
fail:
  if (s->ssl) SSL_free(s->ssl);
  free(s->hostname);
  free(s);
  return NULL;
}

void al_tls_session_free(lua_State *L, al_TlsSession *s) {
  if (!s) return;
  SSL_free(s->ssl); /* frees the BIO */
  free(s->kept);
  free(s->hostname);
  luaL_unref(L, LUA_REGISTRYINDEX, s->sni_ref);
  free(s);
}

SSL *al_tls_ssl(al_TlsSession *s) { return s->ssl; }

const char *al_tls_hostname(const al_TlsSession *s) { return s->hostname; }

lua_State *al_tls_session_lua(al_TlsSession *s) { return s->L; }

void al_tls_set_sni_context(lua_State *L, al_TlsSession *s, int idx) {
  lua_pushvalue(L, idx);
  luaL_unref(L, LUA_REGISTRYINDEX, s->sni_ref);
  s->sni_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

int al_tls_push_sni_context(lua_State *L, al_TlsSession *s) {
  if (s->sni_ref == LUA_NOREF) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->sni_ref);
  return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Input. */

void al_tls_feed(al_TlsSession *s, const char *p, size_t n) {
  if (s->in_len == 0) {
    s->in = p;
    s->in_len = n;
    return;
  }
  /* Input kept from before a pause comes first: append behind it. */
  if (!al_tls_keep_input(s)) return;
  size_t need = s->in_len + n;
  if (need > s->kept_cap) {
    char *k = realloc(s->kept, need);
    if (!k) {
      s->sink_failed = 1;
      return;
    }
    s->kept = k;
    s->kept_cap = need;
  }
  memcpy(s->kept + s->in_len, p, n);
  s->in = s->kept;
  s->in_len = need;
}

/* Makes the unread input the session's own (a copy at the front of kept); 0 when out of memory. */
int al_tls_keep_input(al_TlsSession *s) {
  if (s->in_len == 0) {
    free(s->kept); /* an idle connection keeps no input buffer */
    s->kept = NULL;
    s->kept_cap = 0;
    s->in = NULL;
    return 1;
  }
  if (s->kept && s->in >= s->kept && s->in < s->kept + s->kept_cap) {
    memmove(s->kept, s->in, s->in_len);
  } else {
    if (s->in_len > s->kept_cap) {
      char *k = realloc(s->kept, s->in_len);
      if (!k) return 0;
      s->kept = k;
      s->kept_cap = s->in_len;
    }
    memcpy(s->kept, s->in, s->in_len);
  }
  s->in = s->kept;
  return 1;
}

size_t al_tls_input_len(const al_TlsSession *s) { return s->in_len; }

void al_tls_drop_input(al_TlsSession *s) {
  s->in_len = 0;
  al_tls_keep_input(s);
}

/* ---------------------------------------------------------------------------------------- */
/* Steps. */

/* After a step returned r <= 0: AL_TLS_WANT, AL_TLS_EOF, or AL_TLS_FAILED with the cause kept. */
static int step_result(al_TlsSession *s, int r) {
  int e = SSL_get_error(s->ssl, r);
  if (e == SSL_ERROR_WANT_READ && !s->sink_failed) return AL_TLS_WANT;
  if (e == SSL_ERROR_ZERO_RETURN) return AL_TLS_EOF;
  s->ssl_error = e;
  s->err = ERR_peek_last_error();
  ERR_clear_error();
  return AL_TLS_FAILED;
}

int al_tls_handshake(lua_State *L, al_TlsSession *s) {
  if (SSL_is_init_finished(s->ssl)) return AL_TLS_DONE;
  ERR_clear_error();
  s->L = L;
  int r = SSL_do_handshake(s->ssl);
  s->L = NULL;
  return r == 1 ? AL_TLS_DONE : step_result(s, r);
}

ptrdiff_t al_tls_read(lua_State *L, al_TlsSession *s, char *dst, size_t cap) {
  size_t n = 0;
  ERR_clear_error();
  s->L = L;
  int r = SSL_read_ex(s->ssl, dst, cap, &n);
  s->L = NULL;
  return r == 1 ? (ptrdiff_t)n : step_result(s, 0);
}

int al_tls_write(al_TlsSession *s, const char *p, size_t n) {
  if (n == 0) return 0;
  size_t done = 0;
  ERR_clear_error();
  int r = SSL_write_ex(s->ssl, p, n, &done);
  if (r == 1 && done == n) return 0;
  step_result(s, r);
  return AL_TLS_FAILED;
}

int al_tls_close_notify(al_TlsSession *s) {
  if (SSL_get_shutdown(s->ssl) & SSL_SENT_SHUTDOWN) return 0;
  ERR_clear_error();
  int r = SSL_shutdown(s->ssl);
  if (r >= 0) return 0;
  return step_result(s, r) == AL_TLS_WANT ? 0 : AL_TLS_FAILED;
}

int al_tls_handshake_done(const al_TlsSession *s) { return SSL_is_init_finished(s->ssl); }

int al_tls_received_close_notify(const al_TlsSession *s) {
  return (SSL_get_shutdown(s->ssl) & SSL_RECEIVED_SHUTDOWN) != 0;
}

/* The cause of the last failed step (errors.c builds the error object from it). */
void al_tls_last_failure(const al_TlsSession *s, int *ssl_error, unsigned long *err,
                         int *out_of_memory) {
  *ssl_error = s->ssl_error;
  *err = s->err;
  *out_of_memory = s->sink_failed;
}
