/*
** libFuzzer harness: the TLS record glue (src/tls/session.c) fed bytes no real peer would send.
** Byte 0 picks the side (even: a server reading a "ClientHello", odd: a client reading the
** server's answer to its own ClientHello) and byte 1 the size of the pieces the rest arrives in
** (as reads from a socket would cut it). Any input must end in WANT, a clean EOF or an SSLError,
** never a crash or a leak.
*/
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tls/tls.h"

static int discard(void *ud, const char *p, size_t n) {
  (void)p;
  *(size_t *)ud += n;
  return 1;
}

/* A server context with a self-signed P-256 certificate made in memory. */
static SSL_CTX *server_ctx(void) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, key);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_sign(x, key, EVP_sha256());
  SSL_CTX_use_certificate(ctx, x);
  SSL_CTX_use_PrivateKey(ctx, key);
  X509_free(x);
  EVP_PKEY_free(key);
  return ctx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static al_SslContext server, client;
  if (!server.ctx) {
    server.ctx = server_ctx();
    server.server = 1;
    client.ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(client.ctx, SSL_VERIFY_NONE, NULL);
  }
  if (size < 2) return 0;
  int is_server = (data[0] & 1) == 0;
  size_t piece = (size_t)data[1] + 1;
  data += 2;
  size -= 2;
  size_t sent = 0;
  al_TlsSession *s = al_tls_session_new(is_server ? &server : &client, is_server, "fuzz.test",
                                        discard, &sent);
  if (!s) return 0;
  int done = al_tls_handshake(NULL, s); /* a client's ClientHello */
  char out[16384];
  for (size_t off = 0; off < size && done != AL_TLS_FAILED; off += piece) {
    size_t n = size - off < piece ? size - off : piece;
    al_tls_feed(s, (const char *)data + off, n);
    if (done != AL_TLS_DONE) done = al_tls_handshake(NULL, s);
    if (done == AL_TLS_DONE) {
      ptrdiff_t r;
      while ((r = al_tls_read(NULL, s, out, sizeof out)) > 0) {}
      if (r == AL_TLS_FAILED) done = AL_TLS_FAILED;
      if (r == AL_TLS_EOF) break;
    }
    if (!al_tls_keep_input(s)) break;
  }
  al_tls_session_free(NULL, s);
  return 0;
}
