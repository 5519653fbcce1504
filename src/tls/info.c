/*
** What get_extra_info tells about a TLS connection (API.md §12): "peercert" as a table (subject,
** issuer, serial, not_before, not_after, subject_alt_names, version; the shape of Python's
** getpeercert), "peercert_der", "cipher" ({name, version, bits}), "tls_version",
** "alpn_protocol" and "server_hostname". "sslcontext" is the transport's own (it holds the context userdata).
*/
#include <arpa/inet.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "tls/tls.h"

/* {longName = value, ...} for an X509 name ("commonName", "organizationName", ...). */
static void push_name(lua_State *L, const X509_NAME *name) {
  int n = X509_NAME_entry_count(name);
  lua_createtable(L, 0, n);
  for (int i = 0; i < n; i++) {
    const X509_NAME_ENTRY *ent = X509_NAME_get_entry(name, i);
    int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(ent));
    const char *key = nid != NID_undef ? OBJ_nid2ln(nid) : NULL;
    unsigned char *utf8 = NULL;
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(ent));
    if (key && len >= 0) {
      lua_pushlstring(L, (const char *)utf8, (size_t)len);
      lua_setfield(L, -2, key);
    }
    OPENSSL_free(utf8);
  }
}

/* "Dec  7 04:06:53 2026 GMT", as Python prints notBefore/notAfter. */
static void push_time(lua_State *L, const ASN1_TIME *t) {
  BIO *b = BIO_new(BIO_s_mem());
  char *p = NULL;
  long len = 0;
  if (b && ASN1_TIME_print(b, t)) len = BIO_get_mem_data(b, &p);
  if (len > 0) lua_pushlstring(L, p, (size_t)len);
  else lua_pushnil(L);
  BIO_free(b);
}

static void push_serial(lua_State *L, const ASN1_INTEGER *serial) {
  BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
  char *hex = bn ? BN_bn2hex(bn) : NULL;
  if (hex) lua_pushstring(L, hex);
  else lua_pushnil(L);
  OPENSSL_free(hex);
  BN_free(bn);
}

/* {{"DNS", "example.com"}, {"IP Address", "127.0.0.1"}, ...} */
static void push_alt_names(lua_State *L, X509 *cert) {
  GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  int n = names ? sk_GENERAL_NAME_num(names) : 0;
  lua_createtable(L, n, 0);
  int k = 0;
  for (int i = 0; i < n; i++) {
    const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
    const char *kind = NULL;
    char ip[INET6_ADDRSTRLEN];
    const char *value = NULL;
    int vlen = -1;
    if (gn->type == GEN_DNS || gn->type == GEN_EMAIL || gn->type == GEN_URI) {
      kind = gn->type == GEN_DNS ? "DNS" : gn->type == GEN_EMAIL ? "email" : "URI";
      value = (const char *)ASN1_STRING_get0_data(gn->d.ia5);
      vlen = ASN1_STRING_length(gn->d.ia5);
    } else if (gn->type == GEN_IPADD) {
      int len = ASN1_STRING_length(gn->d.ip);
      int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
      if (family && inet_ntop(family, ASN1_STRING_get0_data(gn->d.ip), ip, sizeof ip)) {
        kind = "IP Address";
        value = ip;
        vlen = (int)strlen(ip);
      }
    }
    if (!kind) continue;
    lua_createtable(L, 2, 0);
    lua_pushstring(L, kind);
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, value, (size_t)vlen);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, ++k);
  }
  GENERAL_NAMES_free(names);
}

static void push_peercert(lua_State *L, X509 *cert) {
  lua_createtable(L, 0, 7);
  push_name(L, X509_get_subject_name(cert));
  lua_setfield(L, -2, "subject");
  push_name(L, X509_get_issuer_name(cert));
  lua_setfield(L, -2, "issuer");
  push_serial(L, X509_get0_serialNumber(cert));
  lua_setfield(L, -2, "serial");
  push_time(L, X509_get0_notBefore(cert));
  lua_setfield(L, -2, "not_before");
  push_time(L, X509_get0_notAfter(cert));
  lua_setfield(L, -2, "not_after");
  push_alt_names(L, cert);
  lua_setfield(L, -2, "subject_alt_names");
  lua_pushinteger(L, X509_get_version(cert) + 1);
  lua_setfield(L, -2, "version");
}

static int push_der(lua_State *L, X509 *cert) {
  unsigned char *der = NULL;
  int len = i2d_X509(cert, &der);
  if (len < 0) return 0;
  lua_pushlstring(L, (const char *)der, (size_t)len);
  OPENSSL_free(der);
  return 1;
}

static void set_both(lua_State *L, int i, const char *key) { /* value on top: t[i], t[key] */
  lua_pushvalue(L, -1);
  lua_rawseti(L, -3, i);
  lua_setfield(L, -2, key);
}

static int push_cipher(lua_State *L, SSL *ssl) {
  const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
  if (!c) return 0;
  lua_createtable(L, 3, 3);
  lua_pushstring(L, SSL_CIPHER_get_name(c));
  set_both(L, 1, "name");
  lua_pushstring(L, SSL_CIPHER_get_version(c));
  set_both(L, 2, "version");
  lua_pushinteger(L, SSL_CIPHER_get_bits(c, NULL));
  set_both(L, 3, "bits");
  return 1;
}

int al_tls_push_info(lua_State *L, al_TlsSession *s, const char *name) {
  SSL *ssl = al_tls_ssl(s);
  if (!al_tls_handshake_done(s)) return 0;
  if (strcmp(name, "peercert") == 0 || strcmp(name, "peercert_der") == 0) {
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (!cert) return 0;
    if (name[8] == '_') return push_der(L, cert);
    push_peercert(L, cert);
    return 1;
  }
  if (strcmp(name, "cipher") == 0) return push_cipher(L, ssl);
  if (strcmp(name, "tls_version") == 0) {
    lua_pushstring(L, SSL_get_version(ssl));
    return 1;
  }
  if (strcmp(name, "server_hostname") == 0) {
    if (!al_tls_hostname(s)) return 0;
    lua_pushstring(L, al_tls_hostname(s));
    return 1;
  }
  if (strcmp(name, "alpn_protocol") == 0) {
    const unsigned char *p;
    unsigned int len;
    SSL_get0_alpn_selected(ssl, &p, &len);
    if (len == 0) return 0;
    lua_pushlstring(L, (const char *)p, len);
    return 1;
  }
  return 0;
}
