/*
** aio.ssl (API.md §12): SSL contexts. create_default_context() is a client context that
** verifies the peer against the system CAs and checks its name, TLS >= 1.2, renegotiation off,
** idle buffers released; create_default_context("server") is the server side (no client
** certificate asked). Methods load certificates and CAs, set ALPN and ciphers, and a servername
** callback that picks another context by SNI; fields check_hostname, verify_mode,
** minimum_version and maximum_version read and write like Python's SSLContext attributes.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls/tls.h"

/* Registry: lightuserdata(al_SslContext *) -> its userdata, weak (the servername callback). */
static const char key_contexts = 0;

/* The context at idx (size and magic number: al_toudata). */
al_SslContext *al_sslcontext_test(lua_State *L, int idx) {
  return AL_TOUDATA(L, idx, al_SslContext, AL_SSLCONTEXT_MAGIC);
}

al_SslContext *al_sslcontext_check(lua_State *L, int idx) {
  al_SslContext *c = AL_CHECKUDATA(L, idx, al_SslContext, AL_SSLCONTEXT_MAGIC, AL_SSLCONTEXT_MT);
  if (!c->ctx) luaL_argerror(L, idx, "SSLContext is not initialised");
  return c;
}

static int verify_flags(al_SslContext *c) {
  if (c->verify_mode == AL_VERIFY_NONE) return SSL_VERIFY_NONE;
  if (c->verify_mode == AL_VERIFY_REQUIRED && c->server)
    return SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  return SSL_VERIFY_PEER;
}

/* Pushes a new context for the client or server side (closed first: an error leaves no leak). */
static al_SslContext *context_new(lua_State *L, int server) {
  al_SslContext *c = lua_newuserdatauv(L, sizeof *c, 1);
  memset(c, 0, sizeof *c);
  c->magic = AL_SSLCONTEXT_MAGIC;
  luaL_setmetatable(L, AL_SSLCONTEXT_MT);
  c->server = (unsigned char)server;
  c->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!c->ctx) al_tls_raise_error_queue(L, "SSL_CTX_new");
  SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                  (server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
  SSL_CTX_set_mode(c->ctx, SSL_MODE_RELEASE_BUFFERS);
  if (server) {
    static const unsigned char sid[] = "aloop";
    SSL_CTX_set_session_id_context(c->ctx, sid, sizeof sid - 1);
    c->verify_mode = AL_VERIFY_NONE;
  } else {
    c->verify_mode = AL_VERIFY_REQUIRED;
    c->check_hostname = 1;
    if (!SSL_CTX_set_default_verify_paths(c->ctx))
      al_tls_raise_error_queue(L, "loading the system CA certificates");
  }
  SSL_CTX_set_verify(c->ctx, verify_flags(c), NULL);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &key_contexts);
  lua_pushvalue(L, -2);
  lua_rawsetp(L, -2, c);
  lua_pop(L, 1);
  return c;
}

/* aio.ssl.create_default_context([purpose]): purpose "client" (default) or "server". */
static int l_create_default_context(lua_State *L) {
  static const char *const purposes[] = {"client", "server", NULL};
  int server = luaL_checkoption(L, 1, "client", purposes);
  context_new(L, server);
  return 1;
}

al_SslContext *al_sslcontext_opt(lua_State *L, int idx, int server) {
  if (lua_isboolean(L, idx) && lua_toboolean(L, idx)) return context_new(L, server);
  al_SslContext *c = al_sslcontext_check(L, idx);
  if (c->server != server)
    luaL_error(L, "aloop: ssl= needs a %s-side context (aio.ssl.create_default_context(%s))",
               server ? "server" : "client", server ? "\"server\"" : "");
  lua_pushvalue(L, idx);
  return c;
}

/* ---------------------------------------------------------------------------------------- */
/* Certificates and CAs. */

/* A missing or unreadable file is an OSError (FileNotFoundError in Python), not an SSLError. */
static void check_readable(lua_State *L, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) al_oserror_raise(L, errno, path);
  fclose(f);
}

/* Key passwords: a string, or a function returning one (called once, when needed). */
typedef struct Password {
  lua_State *L;
  int idx;
  int failed;
} Password;

static int password_cb(char *buf, int size, int rwflag, void *ud) {
  (void)rwflag;
  Password *pw = ud;
  lua_State *L = pw->L;
  if (lua_isnoneornil(L, pw->idx)) return 0;
  lua_pushvalue(L, pw->idx);
  if (lua_isfunction(L, -1) && lua_pcall(L, 0, 1, 0) != LUA_OK) {
    pw->failed = 1;
    lua_pop(L, 1);
    return -1;
  }
  size_t len;
  const char *p = lua_tolstring(L, -1, &len);
  if (!p || len > (size_t)size) {
    pw->failed = 1;
    lua_pop(L, 1);
    return -1;
  }
  memcpy(buf, p, len);
  lua_pop(L, 1);
  return (int)len;
}

/* ctx:load_cert_chain(certfile [, keyfile [, password]]): PEM files; keyfile defaults to certfile. */
static int ctx_load_cert_chain(lua_State *L) {
  al_SslContext *c = al_sslcontext_check(L, 1);
  const char *certfile = luaL_checkstring(L, 2);
  const char *keyfile = luaL_optstring(L, 3, certfile);
  if (!lua_isnoneornil(L, 4) && !lua_isstring(L, 4) && !lua_isfunction(L, 4))
    luaL_typeerror(L, 4, "string or function");
  check_readable(L, certfile);
  check_readable(L, keyfile);
  Password pw = {L, 4, 0};
  ERR_clear_error();
  if (!SSL_CTX_use_certificate_chain_file(c->ctx, certfile))
    return al_tls_raise_error_queue(L, certfile);
  SSL_CTX_set_default_passwd_cb(c->ctx, password_cb);
  SSL_CTX_set_default_passwd_cb_userdata(c->ctx, &pw);
  int ok = SSL_CTX_use_PrivateKey_file(c->ctx, keyfile, SSL_FILETYPE_PEM);
  SSL_CTX_set_default_passwd_cb(c->ctx, NULL);
  SSL_CTX_set_default_passwd_cb_userdata(c->ctx, NULL);
  if (pw.failed) {
    ERR_clear_error();
    return luaL_error(L, "aloop: load_cert_chain: the password must be a string (or a function "
                         "returning one) of at most 1023 bytes");
  }
  if (!ok) return al_tls_raise_error_queue(L, keyfile);
  if (!SSL_CTX_check_private_key(c->ctx)) return al_tls_raise_error_queue(L, "key mismatch");
  return 0;
}

/* Adds every certificate of a PEM text to the context's trust store. */
static void load_cadata(lua_State *L, al_SslContext *c, int idx) {
  size_t len;
  const char *pem = luaL_checklstring(L, idx, &len);
  BIO *b = BIO_new_mem_buf(pem, (int)len);
  if (!b) luaL_error(L, "not enough memory");
  X509_STORE *store = SSL_CTX_get_cert_store(c->ctx);
  int n = 0;
  X509 *x;
  ERR_clear_error();
  while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
    X509_STORE_add_cert(store, x); /* a certificate already there is fine */
    X509_free(x);
    n++;
  }
  BIO_free(b);
  ERR_clear_error(); /* the end of the text reads as "no start line" */
  if (n == 0) luaL_error(L, "aloop: load_verify_locations: cadata holds no PEM certificate");
}

/* ctx:load_verify_locations(cafile [, capath]) or ctx:load_verify_locations{cafile=, capath=,
   cadata=}. */
static int ctx_load_verify_locations(lua_State *L) {
  al_SslContext *c = al_sslcontext_check(L, 1);
  const char *cafile, *capath;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "cafile");
    lua_getfield(L, 2, "capath");
    lua_getfield(L, 2, "cadata");
    cafile = luaL_optstring(L, 3, NULL);
    capath = luaL_optstring(L, 4, NULL);
    if (!lua_isnil(L, 5)) load_cadata(L, c, 5);
    else if (!cafile && !capath) luaL_argerror(L, 2, "cafile, capath or cadata expected");
  } else {
    cafile = luaL_optstring(L, 2, NULL);
    capath = luaL_optstring(L, 3, NULL);
    if (!cafile && !capath) luaL_argerror(L, 2, "cafile or capath expected");
  }
  if (cafile) check_readable(L, cafile);
  ERR_clear_error();
  if ((cafile || capath) && !SSL_CTX_load_verify_locations(c->ctx, cafile, capath))
    return al_tls_raise_error_queue(L, cafile ? cafile : capath);
  return 0;
}

static int ctx_load_default_certs(lua_State *L) {
  al_SslContext *c = al_sslcontext_check(L, 1);
  if (!SSL_CTX_set_default_verify_paths(c->ctx))
    return al_tls_raise_error_queue(L, "loading the system CA certificates");
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* ALPN and ciphers. */

/* The server picks the first of its own protocols the client offers; none in common: no ALPN. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
  (void)ssl;
  al_SslContext *c = arg;
  if (!c->alpn) return SSL_TLSEXT_ERR_NOACK;
  unsigned char *sel;
  if (SSL_select_next_proto(&sel, outlen, c->alpn, (unsigned int)c->alpn_len, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

/* ctx:set_alpn_protocols{"h2", "http/1.1"} */
static int ctx_set_alpn_protocols(lua_State *L) {
  al_SslContext *c = al_sslcontext_check(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_Integer n = luaL_len(L, 2);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    size_t len;
    const char *p = lua_tolstring(L, -1, &len);
    if (!p || len == 0 || len > 255)
      return luaL_error(L, "aloop: set_alpn_protocols: protocol %d must be a string of 1 to 255 "
                           "bytes", (int)i);
    lua_pop(L, 1);
    luaL_addchar(&b, (char)len);
    luaL_addlstring(&b, p, len);
  }
  luaL_pushresult(&b);
  size_t len;
  const char *wire = lua_tolstring(L, -1, &len);
  unsigned char *copy = len ? malloc(len) : NULL;
  if (len && !copy) return luaL_error(L, "not enough memory");
  if (len) memcpy(copy, wire, len);
  if (!c->server && SSL_CTX_set_alpn_protos(c->ctx, copy, (unsigned int)len) != 0) {
    free(copy);
    return al_tls_raise_error_queue(L, "set_alpn_protocols");
  }
  free(c->alpn);
  c->alpn = copy;
  c->alpn_len = len;
  if (c->server) SSL_CTX_set_alpn_select_cb(c->ctx, copy ? alpn_select : NULL, c);
  return 0;
}

/* ctx:set_ciphers("ECDHE+AESGCM:..."): the TLS 1.2 cipher list (TLS 1.3 suites stay). */
static int ctx_set_ciphers(lua_State *L) {
  al_SslContext *c = al_sslcontext_check(L, 1);
  const char *list = luaL_checkstring(L, 2);
  ERR_clear_error();
  if (!SSL_CTX_set_cipher_list(c->ctx, list)) {
    ERR_clear_error();
    lua_pushliteral(L, "No cipher can be selected.");
    al_error_push(L, "SSLError", lua_tostring(L, -1));
    lua_pushliteral(L, "NO_CIPHER_MATCH");
    lua_setfield(L, -2, "reason");
    lua_pushliteral(L, "SSL");
    lua_setfield(L, -2, "library");
    return lua_error(L);
  }
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* SNI on the server: fn(name) returns another context for this connection, or nil. */

/* Runs protected: the original context's callback with the name; switches the SSL's context. */
static int servername_call(lua_State *L) {
  al_SslContext *c = lua_touserdata(L, 1);
  al_TlsSession *s = lua_touserdata(L, 2);
  SSL *ssl = al_tls_ssl(s);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &key_contexts);
  lua_rawgetp(L, -1, c);
  lua_getiuservalue(L, -1, 1);
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name) lua_pushstring(L, name);
  else lua_pushnil(L);
  lua_call(L, 1, 1);
  if (lua_isnil(L, -1)) return 0;
  al_SslContext *other = al_sslcontext_test(L, -1);
  if (!other || !other->ctx || !other->server)
    return luaL_error(L, "aloop: the servername callback must return a server SSLContext or nil");
  if (other != c) {
    if (!SSL_set_SSL_CTX(ssl, other->ctx)) return luaL_error(L, "SSL_set_SSL_CTX failed");
    SSL_set_verify(ssl, verify_flags(other), NULL);
    al_tls_set_sni_context(L, s, -1);
  }
  return 0;
}

static int servername_cb(SSL *ssl, int *alert, void *arg) {
  al_TlsSession *s = SSL_get_app_data(ssl);
  lua_State *L = s ? al_tls_session_lua(s) : NULL;
  if (!L) return SSL_TLSEXT_ERR_OK;
  if (!lua_checkstack(L, 8)) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  int top = lua_gettop(L);
  lua_pushcfunction(L, al_msgh);
  lua_pushcfunction(L, servername_call);
  lua_pushlightuserdata(L, arg);
  lua_pushlightuserdata(L, s);
  int r = lua_pcall(L, 2, 0, top + 1);
  al_Loop *loop = al_state(L)->running;
  if (r != LUA_OK && loop) { /* nobody awaits this: the loop's exception handler hears of it */
    lua_pushliteral(L, "Error in the TLS servername callback");
    al_push_error_context(L, lua_gettop(L) - 1);
    al_report(L, loop, -1);
  }
  lua_settop(L, top);
  if (r == LUA_OK) return SSL_TLSEXT_ERR_OK;
  *alert = SSL_AD_INTERNAL_ERROR;
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* ctx:set_servername_callback(fn or nil) */
static int ctx_set_servername_callback(lua_State *L) {
  al_SslContext *c = al_sslcontext_check(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
  if (!c->server) return luaL_error(L, "aloop: set_servername_callback needs a server context");
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, 1, 1);
  if (lua_isnil(L, 2)) SSL_CTX_set_tlsext_servername_callback(c->ctx, NULL);
  else SSL_CTX_set_tlsext_servername_callback(c->ctx, servername_cb);
  SSL_CTX_set_tlsext_servername_arg(c->ctx, c);
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Fields. */

static const char *const verify_names[] = {"none", "optional", "required", NULL};
static const char *const version_names[] = {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", NULL};
static const int version_codes[] = {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION,
                                    TLS1_3_VERSION};

static void push_version(lua_State *L, int v) {
  for (int i = 0; version_names[i]; i++)
    if (version_codes[i] == v) {
      lua_pushstring(L, version_names[i]);
      return;
    }
  lua_pushnil(L); /* 0: no bound */
}

static int ctx_index(lua_State *L) {
  al_SslContext *c = al_sslcontext_check(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "check_hostname") == 0) lua_pushboolean(L, c->check_hostname);
  else if (strcmp(k, "verify_mode") == 0) lua_pushstring(L, verify_names[c->verify_mode]);
  else if (strcmp(k, "minimum_version") == 0) push_version(L, SSL_CTX_get_min_proto_version(c->ctx));
  else if (strcmp(k, "maximum_version") == 0) push_version(L, SSL_CTX_get_max_proto_version(c->ctx));
  else if (strcmp(k, "server_side") == 0) lua_pushboolean(L, c->server);
  else lua_rawget(L, lua_upvalueindex(1)); /* the methods */
  return 1;
}

static int ctx_newindex(lua_State *L) {
  al_SslContext *c = al_sslcontext_check(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "check_hostname") == 0) {
    luaL_checktype(L, 3, LUA_TBOOLEAN);
    c->check_hostname = (unsigned char)lua_toboolean(L, 3);
    if (c->check_hostname && c->verify_mode == AL_VERIFY_NONE) c->verify_mode = AL_VERIFY_REQUIRED;
  } else if (strcmp(k, "verify_mode") == 0) {
    int mode = luaL_checkoption(L, 3, NULL, verify_names);
    if (mode == AL_VERIFY_NONE && c->check_hostname)
      return luaL_error(L, "aloop: Cannot set verify_mode to \"none\" when check_hostname is "
                           "enabled (set check_hostname = false first)");
    c->verify_mode = (unsigned char)mode;
  } else if (strcmp(k, "minimum_version") == 0 || strcmp(k, "maximum_version") == 0) {
    int v = lua_isnil(L, 3) ? 0 : version_codes[luaL_checkoption(L, 3, NULL, version_names)];
    int ok = k[1] == 'i' ? SSL_CTX_set_min_proto_version(c->ctx, v)
                         : SSL_CTX_set_max_proto_version(c->ctx, v);
    if (!ok) return al_tls_raise_error_queue(L, k);
    return 0;
  } else {
    return luaL_error(L, "aloop: SSLContext has no field '%s'", k);
  }
  SSL_CTX_set_verify(c->ctx, verify_flags(c), NULL);
  return 0;
}

static int ctx_gc(lua_State *L) {
  al_SslContext *c = lua_touserdata(L, 1);
  if (c->ctx) SSL_CTX_free(c->ctx); /* connections hold their own reference */
  c->ctx = NULL;
  free(c->alpn);
  c->alpn = NULL;
  return 0;
}

static int ctx_tostring(lua_State *L) {
  al_SslContext *c = al_sslcontext_check(L, 1);
  lua_pushfstring(L, "<aloop.SSLContext %s %p>", c->server ? "server" : "client", (void *)c);
  return 1;
}

static const luaL_Reg ctx_methods[] = {
    {"load_cert_chain", ctx_load_cert_chain},
    {"load_verify_locations", ctx_load_verify_locations},
    {"load_default_certs", ctx_load_default_certs},
    {"set_alpn_protocols", ctx_set_alpn_protocols},
    {"set_ciphers", ctx_set_ciphers},
    {"set_servername_callback", ctx_set_servername_callback},
    {NULL, NULL},
};

static const luaL_Reg ctx_meta[] = {
    {"__newindex", ctx_newindex},
    {"__gc", ctx_gc},
    {"__tostring", ctx_tostring},
    {NULL, NULL},
};

/* core._is_sslcontext(x) */
static int l_is_sslcontext(lua_State *L) {
  lua_pushboolean(L, al_sslcontext_test(L, 1) != NULL);
  return 1;
}

/* core.ssl (the public aio.ssl), core._is_sslcontext, the error classes and core._tls_wrap. */
void al_tls_open(lua_State *L, int core) {
  al_tls_errors_open(L, core);
  al_tls_filter_open(L, core);
  lua_newtable(L); /* the weak registry of contexts */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &key_contexts);
  al_new_class(L, AL_SSLCONTEXT_MT, ctx_methods, ctx_meta);
  lua_pushcclosure(L, ctx_index, 1); /* the fields, then the methods */
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_is_sslcontext);
  lua_setfield(L, core, "_is_sslcontext");
  lua_createtable(L, 0, 4);
  lua_pushcfunction(L, l_create_default_context);
  lua_setfield(L, -2, "create_default_context");
  lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION));
  lua_setfield(L, -2, "OPENSSL_VERSION");
  lua_getfield(L, core, "SSLError");
  lua_setfield(L, -2, "SSLError");
  lua_getfield(L, core, "SSLCertVerificationError");
  lua_setfield(L, -2, "SSLCertVerificationError");
  lua_setfield(L, core, "ssl");
}
