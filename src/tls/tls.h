/*
** Declarations shared by the TLS files: SSL contexts (context.c, the Lua-visible aio.ssl), the
** per-connection engine over a BIO of aloop's own buffers (session.c), the SSLError objects
** (errors.c) and the certificate / connection facts for get_extra_info (info.c).
*/
#ifndef ALOOP_TLS_H
#define ALOOP_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "core/internal.h"

#define AL_SSLCONTEXT_MT "aloop.SSLContext"

enum { AL_VERIFY_NONE, AL_VERIFY_OPTIONAL, AL_VERIFY_REQUIRED };

/*
** An aio.ssl context: a refcounted SSL_CTX (connections hold their own reference, so a context
** collected by Lua stays valid for them) and the settings OpenSSL does not keep per context in
** the form Lua reads them back. Uservalue 1: the servername callback (or nil).
*/
#define AL_SSLCONTEXT_MAGIC 0x73736c63u /* "sslc" (al_toudata) */

typedef struct al_SslContext {
  uint32_t magic; /* AL_SSLCONTEXT_MAGIC */
  SSL_CTX *ctx;
  unsigned char server;         /* made for the server side */
  unsigned char check_hostname; /* clients: SSL_set1_host with server_hostname */
  unsigned char verify_mode;    /* AL_VERIFY_* */
  unsigned char *alpn;          /* ALPN protocols, wire format (length-prefixed), or NULL */
  size_t alpn_len;
} al_SslContext;

/* context.c */
al_SslContext *al_sslcontext_check(lua_State *L, int idx);
al_SslContext *al_sslcontext_test(lua_State *L, int idx); /* or NULL */
/* Pushes the context for an ssl= option at idx: the context itself, or for `true` a new default
   context of that side. */
al_SslContext *al_sslcontext_opt(lua_State *L, int idx, int server);
void al_tls_open(lua_State *L, int core); /* core.ssl, the SSL error classes, core._tls_wrap */

/*
** The per-connection engine. Ciphertext from the peer is fed in; cleartext comes out of
** al_tls_read; every record OpenSSL produces (handshake messages, application data, alerts,
** TLS 1.3 tickets and KeyUpdates) goes to the sink at once, which never refuses (it appends to the
** transport's write buffer), so the only "want" is WANT_READ.
*/
typedef struct al_TlsSession al_TlsSession;
typedef int (*al_TlsSink)(void *ud, const char *p, size_t n); /* 0: out of memory */

enum {
  AL_TLS_WANT = 0,    /* more ciphertext is needed */
  AL_TLS_DONE = 1,    /* handshake: finished */
  AL_TLS_EOF = -1,    /* read: the peer sent close_notify */
  AL_TLS_FAILED = -2, /* a TLS error: al_tls_push_error describes it */
};

/* The SSL_CTX of ctx, a client (server_hostname may be NULL or "") or a server; NULL when out
   of memory (nothing to free). */
al_TlsSession *al_tls_session_new(al_SslContext *ctx, int server, const char *server_hostname,
                                  al_TlsSink sink, void *sink_ud);
void al_tls_session_free(lua_State *L, al_TlsSession *s);
/* Ciphertext received: borrowed until al_tls_keep_input or the next feed. */
void al_tls_feed(al_TlsSession *s, const char *p, size_t n);
/* Copies what OpenSSL has not consumed of the borrowed input into the session (a pause). */
int al_tls_keep_input(al_TlsSession *s);
size_t al_tls_input_len(const al_TlsSession *s);
void al_tls_drop_input(al_TlsSession *s); /* after close_notify: the rest is discarded */
/* Steps that may call Lua (the servername callback) take the running Lua thread. */
int al_tls_handshake(lua_State *L, al_TlsSession *s);
ptrdiff_t al_tls_read(lua_State *L, al_TlsSession *s, char *dst, size_t cap); /* > 0 bytes */
int al_tls_write(al_TlsSession *s, const char *p, size_t n); /* 0, or AL_TLS_FAILED */
int al_tls_close_notify(al_TlsSession *s); /* queues close_notify; 0 or AL_TLS_FAILED */
int al_tls_handshake_done(const al_TlsSession *s);
int al_tls_received_close_notify(const al_TlsSession *s);
SSL *al_tls_ssl(al_TlsSession *s);
const char *al_tls_hostname(const al_TlsSession *s); /* the client's server_hostname or NULL */
/* Pushes the context the connection uses now (the one the servername callback chose), or
   nothing and returns 0 when it is the one it was created with. */
int al_tls_push_sni_context(lua_State *L, al_TlsSession *s);
/* For the servername callback (context.c): the thread running the step, and the context it
   chose (kept alive with the session). */
lua_State *al_tls_session_lua(al_TlsSession *s);
void al_tls_set_sni_context(lua_State *L, al_TlsSession *s, int idx);
/* The cause of the last failed step, for errors.c. */
void al_tls_last_failure(const al_TlsSession *s, int *ssl_error, unsigned long *err,
                         int *out_of_memory);

/* errors.c: pushes the SSLError (or SSLCertVerificationError) for the last failure of s. */
void al_tls_push_error(lua_State *L, al_TlsSession *s);
void al_tls_push_error_queue(lua_State *L, const char *what); /* from ERR_get_error */
int al_tls_raise_error_queue(lua_State *L, const char *what);
void al_tls_errors_open(lua_State *L, int core);

/* info.c: get_extra_info's TLS keys; pushes the value and returns 1, or returns 0 */
int al_tls_push_info(lua_State *L, al_TlsSession *s, const char *name);

/* filter.c: core._tls_wrap, TLS as a filter of the stream transport */
void al_tls_filter_open(lua_State *L, int core);

#endif
