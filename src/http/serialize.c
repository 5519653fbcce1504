/*
** Serialising HTTP/1.1 heads (core._http.response, core._http.request): one Lua call turns a
** status or request line, a headers table and a small body into the one string the connection
** writes. Header names and values are checked (no CR, LF or NUL: no response splitting).
*/
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <http_parser.h>

#include "http/http.h"

#define MAX_LINES 256
#define JOIN_BODY_MAX 65536 /* a bigger body is returned apart (written with writev) */

typedef struct Line {
  const char *name, *value;
  size_t nlen, vlen;
  char num[32]; /* a number value's text */
} Line;

typedef struct Head {
  Line lines[MAX_LINES];
  int n;
  size_t size; /* bytes of the lines, "name: value\r\n" each */
  unsigned seen; /* SEEN_* of the headers given */
} Head;

enum { SEEN_LENGTH = 1, SEEN_TYPE = 2, SEEN_TE = 4, SEEN_DATE = 8, SEEN_SERVER = 16,
       SEEN_CONNECTION = 32, SEEN_HOST = 64, SEEN_UA = 128, SEEN_ACCEPT = 256 };

static int name_is(const Line *l, const char *name, size_t n) {
  return l->nlen == n && strncasecmp(l->name, name, n) == 0;
}

static unsigned seen_bit(const Line *l) {
  static const struct { const char *name; size_t n; unsigned bit; } known[] = {
      {"content-length", 14, SEEN_LENGTH}, {"content-type", 12, SEEN_TYPE},
      {"transfer-encoding", 17, SEEN_TE},  {"date", 4, SEEN_DATE},
      {"server", 6, SEEN_SERVER},          {"connection", 10, SEEN_CONNECTION},
      {"host", 4, SEEN_HOST},              {"user-agent", 10, SEEN_UA},
      {"accept", 6, SEEN_ACCEPT},
  };
  for (size_t i = 0; i < sizeof known / sizeof *known; i++)
    if (name_is(l, known[i].name, known[i].n)) return known[i].bit;
  return 0;
}

static void check_text(lua_State *L, const char *s, size_t n, int is_name) {
  if (is_name && n == 0) luaL_error(L, "aloop.http: empty header name");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\r' || c == '\n' || c == 0 || (is_name && (c == ':' || c <= ' ' || c >= 127)))
      luaL_error(L, "aloop.http: invalid character in header %s %q", is_name ? "name" : "value",
                 s);
  }
}

static void add_line(lua_State *L, Head *h, const char *name, size_t nlen, int vidx) {
  if (h->n == MAX_LINES) luaL_error(L, "aloop.http: more than %d header lines", MAX_LINES);
  Line *l = &h->lines[h->n];
  l->name = name, l->nlen = nlen;
  if (lua_type(L, vidx) == LUA_TNUMBER) { /* formatted here: the table keeps no string of it */
    if (lua_isinteger(L, vidx))
      l->vlen = (size_t)snprintf(l->num, sizeof l->num, LUA_INTEGER_FMT, lua_tointeger(L, vidx));
    else
      l->vlen = (size_t)snprintf(l->num, sizeof l->num, "%.14g", lua_tonumber(L, vidx));
    l->value = l->num;
  } else {
    l->value = lua_tolstring(L, vidx, &l->vlen);
  }
  check_text(L, l->value, l->vlen, 0);
  h->size += nlen + 2 + l->vlen + 2;
  h->seen |= seen_bit(l);
  h->n++;
}

static int has_name(const Head *h, int upto, const char *name, size_t n) {
  for (int i = 0; i < upto; i++)
    if (h->lines[i].nlen == n && strncasecmp(h->lines[i].name, name, n) == 0) return 1;
  return 0;
}

/*
** Collects the headers table at idx: name = string | number | list of strings (a line each).
** With skip_known > 0, a name already among the first skip_known lines is left out (a session's
** default headers under a request's own). The strings stay referenced by the table.
*/
static void collect(lua_State *L, Head *h, int idx, int skip_known) {
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "aloop.http: header names must be strings");
    size_t nlen;
    const char *name = lua_tolstring(L, -2, &nlen);
    check_text(L, name, nlen, 1);
    if (skip_known && has_name(h, skip_known, name, nlen)) {
      lua_pop(L, 1);
      continue;
    }
    int t = lua_type(L, -1);
    if (t == LUA_TTABLE) {
      lua_Integer n = luaL_len(L, -1);
      for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, -1, i) != LUA_TSTRING) luaL_error(L, "aloop.http: header %s: strings expected", name);
        add_line(L, h, name, nlen, -1);
        lua_pop(L, 1); /* the string stays in the list */
      }
    } else if (t == LUA_TSTRING || t == LUA_TNUMBER) {
      add_line(L, h, name, nlen, -1);
    } else if (t != LUA_TBOOLEAN || lua_toboolean(L, -1)) {
      luaL_error(L, "aloop.http: header %s: a string, number or list expected", name);
    }
    lua_pop(L, 1);
  }
}

/* Writes n in decimal (no printf on the hot path); returns the end. */
static char *put_uint(char *p, unsigned long long n) {
  char tmp[24];
  int i = 0;
  do tmp[i++] = (char)('0' + n % 10);
  while ((n /= 10) > 0);
  while (i > 0) *p++ = tmp[--i];
  return p;
}

/* "Content-Length: n\r\n" into buf (48 bytes at least); returns its length. */
static size_t length_line(char *buf, unsigned long long n) {
  char *p = buf;
  memcpy(p, "Content-Length: ", 16);
  p = put_uint(p + 16, n);
  *p++ = '\r';
  *p++ = '\n';
  return (size_t)(p - buf);
}

static char *put(char *p, const char *s, size_t n) {
  memcpy(p, s, n);
  return p + n;
}

static char *put_lines(char *p, const Head *h) {
  for (int i = 0; i < h->n; i++) {
    const Line *l = &h->lines[i];
    p = put(p, l->name, l->nlen);
    p = put(p, ": ", 2);
    p = put(p, l->value, l->vlen);
    p = put(p, "\r\n", 2);
  }
  return p;
}

/* "Date: <IMF-fixdate>\r\n", formatted once a second. */
static const char *date_line(size_t *n) {
  static _Thread_local char line[64];
  static _Thread_local size_t len;
  static _Thread_local time_t at;
  time_t now = time(NULL);
  if (now != at || len == 0) {
    struct tm tm;
    gmtime_r(&now, &tm);
    len = strftime(line, sizeof line, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    at = now;
  }
  *n = len;
  return line;
}

/* _http.date(): the current Date header value */
static int l_date(lua_State *L) {
  size_t n;
  const char *line = date_line(&n);
  lua_pushlstring(L, line + 6, n - 8);
  return 1;
}

enum { MODE_CLOSE = 1, MODE_KEEPALIVE = 2, MODE_CHUNKED = 4, MODE_HEAD = 8, MODE_UNFRAMED = 16 };

/*
** _http.response(status, headers|nil, body|nil, mode, extra|nil) -> data [, body]
** mode: 1 Connection: close, 2 Connection: keep-alive, 4 chunked (the body follows in chunks),
** 8 a HEAD answer (Content-Length of body, no body), 16 the body follows and ends with the
** connection (an HTTP/1.0 client: no chunked). extra: ready-made lines (Keep-Alive: ...).
** A body over 64 KiB comes back as a second value, to be written after the head.
*/
static int l_response(lua_State *L) {
  lua_Integer status = luaL_checkinteger(L, 1);
  size_t blen = 0, xlen = 0;
  const char *body = luaL_optlstring(L, 3, NULL, &blen);
  int mode = (int)luaL_optinteger(L, 4, 0);
  const char *extra = luaL_optlstring(L, 5, "", &xlen);
  if (status < 100 || status > 999) return luaL_error(L, "aloop.http: bad status %d", (int)status);
  Head h;
  h.n = 0, h.size = 0, h.seen = 0;
  collect(L, &h, 2, 0);
  const char *reason = http_status_str((enum http_status)status);
  size_t rlen = strlen(reason);
  int no_body = status < 200 || status == 204 || status == 304;
  char clen[48] = "";
  size_t cl = 0;
  if (!no_body && !(h.seen & SEEN_LENGTH) && !(mode & (MODE_CHUNKED | MODE_UNFRAMED)))
    cl = length_line(clen, blen);
  int chunked = (mode & MODE_CHUNKED) && !(h.seen & (SEEN_LENGTH | SEEN_TE)) && !no_body;
  int ctype = !(h.seen & SEEN_TYPE) && (blen > 0 || (mode & (MODE_CHUNKED | MODE_UNFRAMED))) &&
              !no_body;
  size_t dlen = 0;
  const char *date = (h.seen & SEEN_DATE) ? "" : date_line(&dlen);
  static const char server[] = "Server: aloop\r\n", type[] = "Content-Type: text/plain; charset=utf-8\r\n",
                    te[] = "Transfer-Encoding: chunked\r\n", close[] = "Connection: close\r\n",
                    keep[] = "Connection: keep-alive\r\n";
  int conn = (h.seen & SEEN_CONNECTION) ? 0 : (mode & MODE_CLOSE) ? 1 : (mode & MODE_KEEPALIVE) ? 2 : 0;
  int with_body = body && !(mode & MODE_HEAD) && !no_body;
  int join = with_body && blen <= JOIN_BODY_MAX;
  size_t total = 9 + 4 + rlen + 2 + h.size + cl + dlen + 2;
  if (!(h.seen & SEEN_SERVER)) total += sizeof server - 1;
  if (ctype) total += sizeof type - 1;
  if (chunked) total += sizeof te - 1;
  if (conn == 1) total += sizeof close - 1;
  if (conn == 2) total += sizeof keep - 1;
  if (!(mode & MODE_CLOSE)) total += xlen;
  if (join) total += blen;
  luaL_Buffer b;
  char *start = luaL_buffinitsize(L, &b, total);
  char *p = start;
  p = put(p, "HTTP/1.1 ", 9);
  *p++ = (char)('0' + status / 100);
  *p++ = (char)('0' + status / 10 % 10);
  *p++ = (char)('0' + status % 10);
  *p++ = ' ';
  p = put(p, reason, rlen);
  p = put(p, "\r\n", 2);
  if (!(h.seen & SEEN_SERVER)) p = put(p, server, sizeof server - 1);
  p = put(p, date, dlen);
  if (ctype) p = put(p, type, sizeof type - 1);
  p = put(p, clen, cl);
  if (chunked) p = put(p, te, sizeof te - 1);
  if (conn == 1) p = put(p, close, sizeof close - 1);
  if (conn == 2) p = put(p, keep, sizeof keep - 1);
  if (!(mode & MODE_CLOSE)) p = put(p, extra, xlen);
  p = put_lines(p, &h);
  p = put(p, "\r\n", 2);
  if (join) p = put(p, body, blen);
  luaL_pushresultsize(&b, (size_t)(p - start));
  if (with_body && !join) {
    lua_pushvalue(L, 3);
    return 2;
  }
  return 1;
}

/*
** _http.request(method, target, host, headers|nil, defaults|nil, body) -> data [, body]
** body: a string (Content-Length, sent with the head when small), an integer (a Content-Length
** whose bytes follow), true (chunked), nil (none; Content-Length: 0 for POST, PUT and PATCH).
*/
static int l_request(lua_State *L) {
  size_t mlen, tlen, hlen;
  const char *method = luaL_checklstring(L, 1, &mlen);
  const char *target = luaL_checklstring(L, 2, &tlen);
  const char *host = luaL_checklstring(L, 3, &hlen);
  check_text(L, method, mlen, 1);
  check_text(L, target, tlen, 0);
  check_text(L, host, hlen, 0);
  for (size_t i = 0; i < tlen; i++)
    if (target[i] == ' ') return luaL_error(L, "aloop.http: a space in the request target");
  Head h;
  h.n = 0, h.size = 0, h.seen = 0;
  collect(L, &h, 4, 0);
  collect(L, &h, 5, h.n); /* defaults: only the names the request did not give */
  size_t blen = 0;
  const char *body = NULL;
  char clen[48] = "";
  size_t cl = 0;
  int chunked = 0;
  int bt = lua_type(L, 6);
  if (bt == LUA_TSTRING) {
    body = lua_tolstring(L, 6, &blen);
    if (!(h.seen & SEEN_LENGTH)) cl = length_line(clen, blen);
  } else if (bt == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, 6);
    luaL_argcheck(L, n >= 0, 6, "negative body length");
    if (!(h.seen & SEEN_LENGTH)) cl = length_line(clen, (unsigned long long)n);
  } else if (bt == LUA_TBOOLEAN && lua_toboolean(L, 6)) {
    chunked = !(h.seen & (SEEN_LENGTH | SEEN_TE));
  } else if (!(h.seen & SEEN_LENGTH) && (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                                         strcmp(method, "PATCH") == 0)) {
    cl = length_line(clen, 0);
  }
  static const char ua[] = "User-Agent: aloop\r\n", accept[] = "Accept: */*\r\n",
                    te[] = "Transfer-Encoding: chunked\r\n";
  int join = body && blen <= JOIN_BODY_MAX;
  size_t total = mlen + 1 + tlen + 11 + h.size + cl + 2;
  if (!(h.seen & SEEN_HOST)) total += 6 + hlen + 2;
  if (!(h.seen & SEEN_UA)) total += sizeof ua - 1;
  if (!(h.seen & SEEN_ACCEPT)) total += sizeof accept - 1;
  if (chunked) total += sizeof te - 1;
  if (join) total += blen;
  luaL_Buffer b;
  char *start = luaL_buffinitsize(L, &b, total);
  char *p = start;
  p = put(p, method, mlen);
  p = put(p, " ", 1);
  p = put(p, target, tlen);
  p = put(p, " HTTP/1.1\r\n", 11);
  if (!(h.seen & SEEN_HOST)) {
    p = put(p, "Host: ", 6);
    p = put(p, host, hlen);
    p = put(p, "\r\n", 2);
  }
  if (!(h.seen & SEEN_UA)) p = put(p, ua, sizeof ua - 1);
  if (!(h.seen & SEEN_ACCEPT)) p = put(p, accept, sizeof accept - 1);
  p = put(p, clen, cl);
  if (chunked) p = put(p, te, sizeof te - 1);
  p = put_lines(p, &h);
  p = put(p, "\r\n", 2);
  if (join) p = put(p, body, blen);
  luaL_pushresultsize(&b, (size_t)(p - start));
  if (body && !join) {
    lua_pushvalue(L, 6);
    return 2;
  }
  return 1;
}

/* _http.chunk(data) -> "<hex size>\r\n" .. data .. "\r\n" ("" stays "": the last chunk is
   written apart as "0\r\n\r\n") */
static int l_chunk(lua_State *L) {
  size_t n;
  const char *data = luaL_checklstring(L, 1, &n);
  if (n == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  char size[24];
  int sl = snprintf(size, sizeof size, "%zx\r\n", n);
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, (size_t)sl + n + 2);
  memcpy(p, size, (size_t)sl);
  memcpy(p + sl, data, n);
  memcpy(p + sl + n, "\r\n", 2);
  luaL_pushresultsize(&b, (size_t)sl + n + 2);
  return 1;
}

void al_http_serialize_open(lua_State *L) {
  lua_pushcfunction(L, l_response);
  lua_setfield(L, -2, "response");
  lua_pushcfunction(L, l_request);
  lua_setfield(L, -2, "request");
  lua_pushcfunction(L, l_chunk);
  lua_setfield(L, -2, "chunk");
  lua_pushcfunction(L, l_date);
  lua_setfield(L, -2, "date");
}

void al_http_open(lua_State *L, int core) {
  lua_createtable(L, 0, 6);
  al_http_parser_open(L);
  al_http_serialize_open(L);
  lua_setfield(L, core, "_http");
}
