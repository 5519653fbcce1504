/*
** TLS errors (API.md §12): aio.SSLError, an OSError with .reason and .library (Python's names:
** "CERTIFICATE_VERIFY_FAILED", "SSL"), and its subclass aio.SSLCertVerificationError with
** .verify_code and .verify_message ("Hostname mismatch, ...", "certificate has expired"), built
** from OpenSSL's error queue or from what a connection's failed step kept.
*/
#include <ctype.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls/tls.h"

/* Python's short library names ("SSL", "X509", "PEM", ...). */
static const char *lib_name(unsigned long e) {
  switch (ERR_GET_LIB(e)) {
  case ERR_LIB_SSL: return "SSL";
  case ERR_LIB_X509: return "X509";
  case ERR_LIB_X509V3: return "X509V3";
  case ERR_LIB_PEM: return "PEM";
  case ERR_LIB_EVP: return "EVP";
  case ERR_LIB_ASN1: return "ASN1";
  case ERR_LIB_SYS: return "SYS";
  case ERR_LIB_BIO: return "BIO";
  case ERR_LIB_PKCS12: return "PKCS12";
  case ERR_LIB_RSA: return "RSA";
  case ERR_LIB_EC: return "EC";
  case ERR_LIB_OSSL_DECODER: return "DECODER";
  case ERR_LIB_PROV: return "PROV";
  default: {
    const char *s = ERR_lib_error_string(e);
    return s ? s : "UNKNOWN";
  }
  }
}

/* The symbolic reason: OpenSSL's text in capitals with underscores ("wrong version number" ->
   "WRONG_VERSION_NUMBER"), which is the name of its reason code. */
static void push_reason(lua_State *L, const char *text) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (const char *p = text; *p; p++)
    luaL_addchar(&b, *p == ' ' ? '_' : (char)toupper((unsigned char)*p));
  luaL_pushresult(&b);
}

/*
** Pushes an error of class cls: message "[LIB: REASON] text[: detail]", .library, .reason,
** .errno (the SSL_ERROR_* code, as Python) and .strerror.
*/
static void push_ssl_error(lua_State *L, const char *cls, unsigned long e, int code,
                           const char *detail) {
  const char *text = e ? ERR_reason_error_string(e) : NULL;
  if (!text) text = detail ? detail : "unknown error";
  const char *lib = e ? lib_name(e) : "SSL";
  push_reason(L, text);
  int reason = lua_gettop(L);
  if (detail && detail != text)
    lua_pushfstring(L, "[%s: %s] %s: %s", lib, lua_tostring(L, reason), text, detail);
  else
    lua_pushfstring(L, "[%s: %s] %s", lib, lua_tostring(L, reason), text);
  al_error_push(L, cls, lua_tostring(L, -1));
  lua_insert(L, reason);
  /* STACK: err, reason, message */
  lua_setfield(L, reason, "strerror");
  lua_setfield(L, -2, "reason");
  lua_pushstring(L, lib);
  lua_setfield(L, -2, "library");
  lua_pushinteger(L, code);
  lua_setfield(L, -2, "errno");
}

void al_tls_push_error_queue(lua_State *L, const char *what) {
  unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  push_ssl_error(L, "SSLError", e, SSL_ERROR_SSL, e ? NULL : what);
}

int al_tls_raise_error_queue(lua_State *L, const char *what) {
  al_tls_push_error_queue(L, what);
  return lua_error(L);
}

/* Python's wording for a name that the certificate does not cover. */
static const char *verify_message(lua_State *L, al_TlsSession *s, long code) {
  if (code == X509_V_ERR_HOSTNAME_MISMATCH || code == X509_V_ERR_IP_ADDRESS_MISMATCH) {
    const char *host = al_tls_hostname(s);
    return lua_pushfstring(L, "%s mismatch, certificate is not valid for '%s'.",
                           code == X509_V_ERR_IP_ADDRESS_MISMATCH ? "IP address" : "Hostname",
                           host ? host : "");
  }
  return lua_pushstring(L, X509_verify_cert_error_string(code));
}

void al_tls_push_error(lua_State *L, al_TlsSession *s) {
  int code, oom;
  unsigned long e;
  al_tls_last_failure(s, &code, &e, &oom);
  if (oom) {
    push_ssl_error(L, "SSLError", 0, SSL_ERROR_SSL, "out of memory");
    return;
  }
  SSL *ssl = al_tls_ssl(s);
  long vr = SSL_get_verify_result(ssl);
  if (e && ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
      vr != X509_V_OK) {
    const char *msg = verify_message(L, s, vr);
    push_ssl_error(L, "SSLCertVerificationError", e, code, msg);
    lua_pushinteger(L, vr);
    lua_setfield(L, -2, "verify_code");
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "verify_message");
    lua_remove(L, -2);
    return;
  }
  push_ssl_error(L, "SSLError", e, code, e ? NULL : "TLS protocol failure");
}

/* Adds class `name` (a subclass of `parent`) to aloop's error classes and to the core table. */
static void add_class(lua_State *L, int core, const char *name, const char *parent) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &al_key_errors);
  lua_getfield(L, -1, parent);
  lua_getfield(L, -1, "extend");
  lua_insert(L, -2);
  lua_pushstring(L, name);
  lua_call(L, 2, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, name);
  lua_setfield(L, core, name);
  lua_pop(L, 1);
}

void al_tls_errors_open(lua_State *L, int core) {
  add_class(L, core, "SSLError", "OSError");
  add_class(L, core, "SSLCertVerificationError", "SSLError");
}
