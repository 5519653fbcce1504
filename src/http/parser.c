/*
** The HTTP/1.1 message parser (core._http.parser), glue over http-parser in strict mode.
** p:feed(data) parses a whole buffered chunk (several pipelined messages at once) and returns a
** list of events, in order:
**   a head table   a message's start line and headers (method/target/path/query_string or
**                  status/reason, version, headers with lowercased names, keep_alive, ...;
**                  with raw_headers, _raw instead of headers: _http.headers(_raw) builds them);
**                  when the whole message was in this chunk, head._body holds its body
**                  ("" when none) and no event follows for it;
**   a string       a piece of the current message's body (chunked framing removed);
**   true           the end of the current message.
** On a malformed message or a limit, feed also returns an error code and a description; the
** parser is then dead. p:feed(nil) signals EOF (a response body that ends with the connection).
*/
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "http/http.h"

#define PARSER_MT "aloop.http.Parser"

enum { UV_HEAD_MT = 1, UV_HEADERS_MT, UV_EVENTS, UV_N };

/* The head's field names, interned once (upvalue 1 of feed): set with lua_rawset, no string
   lookup per field. */
static const char *const KEY_NAMES[] = {"method", "target", "path", "query_string", "upgrade",
                                        "status", "reason", "version", "keep_alive", "chunked",
                                        "content_length", "headers", "_body", "_raw", NULL};
enum { K_METHOD = 1, K_TARGET, K_PATH, K_QUERY, K_UPGRADE, K_STATUS, K_REASON, K_VERSION,
       K_KEEP_ALIVE, K_CHUNKED, K_LENGTH, K_HEADERS, K_BODY, K_RAW };

typedef struct Field {
  size_t name, name_len, value, value_len; /* offsets into the head buffer */
} Field;

#define PARSER_MAGIC 0x68747470u /* "http" (al_toudata) */

typedef struct Parser {
  uint32_t magic; /* PARSER_MAGIC */
  http_parser hp;
  lua_State *L;          /* during feed */
  int keys;              /* during feed: stack index of the KEY_NAMES strings */
  lua_Integer n;         /* events in the list being built (at stack index 3) */
  lua_Integer last_n;    /* events the list held after the previous feed */
  lua_Integer head_at;   /* index of the current message's head in the list, 0: earlier chunk */
  char *buf;             /* the current head: start line text, then names and values */
  size_t len, cap;
  size_t line_len;       /* bytes of the url (requests) or reason (responses) */
  Field *fields;
  int nfields, fcap;
  int last;              /* the last header callback: 0 none, 1 name, 2 value */
  int in_message;        /* a message has begun and not ended */
  int in_body;           /* headers are complete: later header callbacks are trailers */
  size_t trailer_len;
  size_t max_head;       /* limits */
  int max_headers;
  uint64_t max_body, body_len;
  int skip_body;         /* the next response answers a HEAD request */
  int raw_headers;       /* heads carry _raw (headers built on demand), not headers */
  const char *err;       /* our own error code when a callback stopped the parser */
  const char *dead_code, *dead_desc;
} Parser;

/* The parser a method is called on (size and magic number: al_toudata). */
static Parser *check_parser(lua_State *L) {
  return AL_CHECKUDATA(L, 1, Parser, PARSER_MAGIC, PARSER_MT);
}

/* Stops the parser with our own error code (-1: an error from every callback, also from
   on_headers_complete, where 1 and 2 mean "no body" and "upgrade"). */
/* head[KEY_NAMES[k]] = the value on top (popped) */
static void set_key(Parser *p, int head, int k) {
  lua_State *L = p->L;
  lua_rawgeti(L, p->keys, k);
  lua_insert(L, -2);
  lua_rawset(L, head);
}

static int fail(Parser *p, const char *code) {
  p->err = code;
  return -1;
}

/* RFC 9110 tchar: what a header name may hold. The packaged http-parser is built lenient
   (spaces in names, control bytes in values): checked here, as strict mode would. */
static int is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return 1;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return 1;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int valid_head(const Parser *p) {
  if (p->hp.type == HTTP_REQUEST)
    for (size_t i = 0; i < p->line_len; i++) {
      unsigned char c = (unsigned char)p->buf[i];
      if (c <= ' ' || c == 127) return 0;
    }
  for (int i = 0; i < p->nfields; i++) {
    const Field *f = &p->fields[i];
    if (f->name_len == 0) return 0;
    for (size_t k = 0; k < f->name_len; k++)
      if (!is_tchar((unsigned char)p->buf[f->name + k])) return 0;
    for (size_t k = 0; k < f->value_len; k++) {
      unsigned char c = (unsigned char)p->buf[f->value + k];
      if ((c < ' ' && c != '\t') || c == 127) return 0;
    }
  }
  return 1;
}

static int append(Parser *p, const char *at, size_t n) {
  if (n == 0) return 0;
  if (p->len + n > p->max_head) return fail(p, "header_too_large");
  if (p->len + n > p->cap) {
    size_t cap = p->cap ? p->cap : 1024;
    while (cap < p->len + n) cap *= 2;
    char *b = realloc(p->buf, cap);
    if (!b) return fail(p, "out_of_memory");
    p->buf = b, p->cap = cap;
  }
  memcpy(p->buf + p->len, at, n);
  p->len += n;
  return 0;
}

/* Appends the value on top of the stack to the event list. */
static void push_event(Parser *p) { lua_rawseti(p->L, 3, ++p->n); }

static int on_message_begin(http_parser *hp) {
  Parser *p = hp->data;
  p->len = p->line_len = 0;
  p->nfields = p->last = p->in_body = 0;
  p->in_message = 1;
  p->trailer_len = 0;
  p->body_len = 0;
  return 0;
}

static int on_line(http_parser *hp, const char *at, size_t n) {
  Parser *p = hp->data;
  p->line_len += n;
  return append(p, at, n);
}

static int on_header_field(http_parser *hp, const char *at, size_t n) {
  Parser *p = hp->data;
  if (p->in_body) { /* a trailer: counted, not kept */
    p->trailer_len += n;
    return p->trailer_len > p->max_head ? fail(p, "header_too_large") : 0;
  }
  if (p->last != 1) {
    if (p->nfields >= p->max_headers) return fail(p, "too_many_headers");
    if (p->nfields == p->fcap) {
      int cap = p->fcap ? p->fcap * 2 : 16;
      Field *f = realloc(p->fields, (size_t)cap * sizeof *f);
      if (!f) return fail(p, "out_of_memory");
      p->fields = f, p->fcap = cap;
    }
    Field *f = &p->fields[p->nfields++];
    f->name = p->len;
    f->name_len = f->value = f->value_len = 0;
    p->last = 1;
  }
  p->fields[p->nfields - 1].name_len += n;
  return append(p, at, n);
}

static int on_header_value(http_parser *hp, const char *at, size_t n) {
  Parser *p = hp->data;
  if (p->in_body) {
    p->trailer_len += n;
    return p->trailer_len > p->max_head ? fail(p, "header_too_large") : 0;
  }
  Field *f = &p->fields[p->nfields - 1];
  if (p->last != 2) {
    f->value = p->len;
    p->last = 2;
  }
  f->value_len += n;
  return append(p, at, n);
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Pushes the path with %XX escapes decoded (a malformed escape stays as it is). */
static void push_path(lua_State *L, const char *s, size_t n) {
  if (!memchr(s, '%', n)) {
    lua_pushlstring(L, s, n);
    return;
  }
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, n);
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 && (lo = hexval(s[i + 2])) >= 0) {
      out[j++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[j++] = s[i];
    }
  }
  luaL_pushresultsize(&b, j);
}

/* Sets headers[name] = value (headers at hdrs); a repeated name joins the values with ", " and
   lists each one in headers._multi[name] (headers:get_all). */
static void set_header(lua_State *L, int hdrs, const char *name, size_t nlen,
                       const char *val, size_t vlen) {
  lua_pushlstring(L, name, nlen);
  int key = lua_gettop(L);
  lua_pushvalue(L, key);
  if (lua_rawget(L, hdrs) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushlstring(L, val, vlen);
    lua_rawset(L, hdrs);
    return;
  }
  int old = lua_gettop(L);
  if (lua_getfield(L, hdrs, "_multi") == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, hdrs, "_multi");
  }
  int multi = lua_gettop(L);
  lua_pushvalue(L, key);
  if (lua_rawget(L, multi) == LUA_TNIL) { /* the first repeat: the list starts with the first */
    lua_pop(L, 1);
    lua_createtable(L, 2, 0);
    lua_pushvalue(L, old);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, key);
    lua_pushvalue(L, -2);
    lua_rawset(L, multi);
  }
  lua_pushlstring(L, val, vlen);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pushvalue(L, key);
  lua_pushvalue(L, old);
  lua_pushliteral(L, ", ");
  lua_pushlstring(L, val, vlen);
  lua_concat(L, 3);
  lua_rawset(L, hdrs);
  lua_settop(L, key - 1);
}

static void push_version(lua_State *L, const http_parser *hp) {
  if (hp->http_major == 1 && hp->http_minor == 1) lua_pushliteral(L, "1.1");
  else if (hp->http_major == 1 && hp->http_minor == 0) lua_pushliteral(L, "1.0");
  else lua_pushfstring(L, "%d.%d", hp->http_major, hp->http_minor);
}

static int on_headers_complete(http_parser *hp) {
  Parser *p = hp->data;
  lua_State *L = p->L;
  int chunked = (hp->flags & F_CHUNKED) != 0;
  int has_length = (hp->flags & F_CONTENTLENGTH) != 0;
  if (!valid_head(p)) return fail(p, "invalid_header");
  if (!chunked && has_length && hp->content_length > p->max_body) return fail(p, "body_too_large");
  if (!lua_checkstack(L, 12)) return fail(p, "out_of_memory");
  p->in_body = 1;
  lua_createtable(L, 0, 8); /* the fields of a GET and _conn (server.lua) fit */
  int head = lua_gettop(L);
  if (hp->type == HTTP_REQUEST) {
    lua_pushstring(L, http_method_str((enum http_method)hp->method));
    set_key(p, head, K_METHOD);
    const char *url = p->buf;
    size_t n = p->line_len;
    lua_pushlstring(L, url, n);
    set_key(p, head, K_TARGET);
    const char *q = memchr(url, '?', n);
    push_path(L, url, q ? (size_t)(q - url) : n);
    set_key(p, head, K_PATH);
    if (q) {
      lua_pushlstring(L, q + 1, n - (size_t)(q - url) - 1);
      set_key(p, head, K_QUERY);
    }
    if (hp->upgrade) {
      lua_pushboolean(L, 1);
      set_key(p, head, K_UPGRADE);
    }
  } else {
    lua_pushinteger(L, hp->status_code);
    set_key(p, head, K_STATUS);
    lua_pushlstring(L, p->buf, p->line_len);
    set_key(p, head, K_REASON);
  }
  push_version(L, hp);
  set_key(p, head, K_VERSION);
  lua_pushboolean(L, http_should_keep_alive(hp));
  set_key(p, head, K_KEEP_ALIVE);
  if (chunked) {
    lua_pushboolean(L, 1);
    set_key(p, head, K_CHUNKED);
  } else if (has_length) {
    lua_pushinteger(L, (lua_Integer)hp->content_length);
    set_key(p, head, K_LENGTH);
  }
  size_t raw_len = 0;
  for (int i = 0; i < p->nfields; i++) { /* names lowercased, values trimmed, in place */
    Field *f = &p->fields[i];
    char *name = p->buf + f->name;
    for (size_t k = 0; k < f->name_len; k++)
      if (name[k] >= 'A' && name[k] <= 'Z') name[k] |= 0x20;
    const char *val = p->buf + f->value;
    while (f->value_len > 0 && (val[f->value_len - 1] == ' ' || val[f->value_len - 1] == '\t'))
      f->value_len--;
    raw_len += f->name_len + f->value_len + 2;
  }
  if (p->raw_headers) { /* "name\0value\0..." for _http.headers(), when someone asks */
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, raw_len);
    for (int i = 0; i < p->nfields; i++) {
      const Field *f = &p->fields[i];
      memcpy(out, p->buf + f->name, f->name_len);
      out += f->name_len;
      *out++ = 0;
      memcpy(out, p->buf + f->value, f->value_len);
      out += f->value_len;
      *out++ = 0;
    }
    luaL_pushresultsize(&b, raw_len);
    set_key(p, head, K_RAW);
  } else {
    lua_createtable(L, 0, p->nfields);
    int hdrs = lua_gettop(L);
    for (int i = 0; i < p->nfields; i++) {
      const Field *f = &p->fields[i];
      set_header(L, hdrs, p->buf + f->name, f->name_len, p->buf + f->value, f->value_len);
    }
    lua_getiuservalue(L, 1, UV_HEADERS_MT);
    lua_setmetatable(L, -2);
    set_key(p, head, K_HEADERS);
  }
  lua_getiuservalue(L, 1, UV_HEAD_MT);
  lua_setmetatable(L, head);
  push_event(p);
  p->head_at = p->n;
  int status = hp->status_code;
  if (hp->type == HTTP_RESPONSE &&
      (p->skip_body || status / 100 == 1 || status == 204 || status == 304))
    return 1;
  return 0;
}

static int on_body(http_parser *hp, const char *at, size_t n) {
  Parser *p = hp->data;
  p->body_len += n;
  if (p->body_len > p->max_body) return fail(p, "body_too_large");
  if (!lua_checkstack(p->L, 2)) return fail(p, "out_of_memory");
  lua_pushlstring(p->L, at, n);
  push_event(p);
  return 0;
}

/* A message whose head is in this chunk gets its body folded into head.body. */
static int on_message_complete(http_parser *hp) {
  Parser *p = hp->data;
  lua_State *L = p->L;
  if (!lua_checkstack(L, 4)) return fail(p, "out_of_memory");
  if (p->head_at > 0) {
    lua_rawgeti(L, 3, p->head_at);
    lua_Integer pieces = p->n - p->head_at;
    if (pieces == 0) lua_pushliteral(L, "");
    else {
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (lua_Integer i = p->head_at + 1; i <= p->n; i++) {
        lua_rawgeti(L, 3, i);
        luaL_addvalue(&b);
        lua_pushnil(L);
        lua_rawseti(L, 3, i);
      }
      luaL_pushresult(&b);
    }
    set_key(p, lua_absindex(L, -2), K_BODY);
    lua_pop(L, 1);
    p->n = p->head_at;
    p->head_at = 0;
  } else {
    lua_pushboolean(L, 1);
    push_event(p);
  }
  p->skip_body = p->in_message = 0;
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_line,
    .on_status = on_line,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* p:feed(data | nil) -> events [, error code, description] */
static int parser_feed(lua_State *L) {
  Parser *p = check_parser(L);
  size_t len = 0;
  const char *data = lua_isnoneornil(L, 2) ? NULL : luaL_checklstring(L, 2, &len);
  lua_settop(L, 2);
  /* index 3: the events, in one list reused by every feed (the caller has consumed the
     previous ones before it feeds again) */
  lua_getiuservalue(L, 1, UV_EVENTS);
  for (lua_Integer i = 1; i <= p->last_n; i++) {
    lua_pushnil(L);
    lua_rawseti(L, 3, i);
  }
  p->last_n = 0;
  if (p->dead_code) {
    lua_pushstring(L, p->dead_code);
    lua_pushstring(L, p->dead_desc);
    return 3;
  }
  p->L = L;
  lua_pushvalue(L, lua_upvalueindex(1));
  p->keys = lua_gettop(L);
  p->n = 0;
  p->head_at = 0;
  p->err = NULL;
  size_t done = http_parser_execute(&p->hp, &settings, data ? data : "", len);
  p->L = NULL;
  p->last_n = p->n;
  lua_settop(L, 3);
  enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
  if (e == HPE_OK && (done == len || p->hp.upgrade)) {
    if (p->hp.upgrade) { /* no protocol switch here: the connection ends after this message */
      p->dead_code = "upgrade";
      p->dead_desc = "protocol upgrade is not supported";
    }
    return 1;
  }
  if (p->err) {
    p->dead_code = p->err;
    p->dead_desc = strcmp(p->err, "header_too_large") == 0 ? "header section too large"
                   : strcmp(p->err, "too_many_headers") == 0 ? "too many header fields"
                   : strcmp(p->err, "body_too_large") == 0   ? "body too large"
                   : strcmp(p->err, "invalid_header") == 0   ? "invalid character in the head"
                                                              : "out of memory";
  } else {
    p->dead_code = http_errno_name(e);
    p->dead_desc = http_errno_description(e);
  }
  lua_pushstring(L, p->dead_code);
  lua_pushstring(L, p->dead_desc);
  return 3;
}

/* _http.headers(raw, mt): the headers table of a head's _raw (raw_headers parsers) */
static int l_headers(lua_State *L) {
  size_t len;
  const char *raw = luaL_checklstring(L, 1, &len);
  lua_settop(L, 2);
  lua_createtable(L, 0, 8);
  int hdrs = lua_gettop(L);
  const char *end = raw + len;
  while (raw < end) {
    const char *name = raw;
    size_t nlen = strlen(name);
    const char *val = name + nlen + 1;
    if (val >= end) break;
    size_t vlen = strlen(val);
    set_header(L, hdrs, name, nlen, val, vlen);
    raw = val + vlen + 1;
  }
  lua_pushvalue(L, 2);
  lua_setmetatable(L, hdrs);
  return 1;
}

/* p:skip_body(): the next response answers a HEAD request (no body whatever its headers say). */
static int parser_skip_body(lua_State *L) {
  check_parser(L)->skip_body = 1;
  return 0;
}

/* p:idle(): true between messages (nothing of a next message has arrived). */
static int parser_idle(lua_State *L) {
  Parser *p = check_parser(L);
  lua_pushboolean(L, !p->dead_code && !p->in_message);
  return 1;
}

static int parser_gc(lua_State *L) {
  Parser *p = lua_touserdata(L, 1);
  free(p->buf);
  free(p->fields);
  p->buf = NULL;
  p->fields = NULL;
  return 0;
}

static lua_Integer opt_limit(lua_State *L, const char *key, lua_Integer def) {
  lua_Integer v = def;
  if (lua_getfield(L, 2, key) != LUA_TNIL) {
    v = luaL_checkinteger(L, -1);
    if (v <= 0) luaL_error(L, "aloop.http: %s must be positive", key);
  }
  lua_pop(L, 1);
  return v;
}

/* _http.parser("request" | "response", {max_header_size=, max_headers=, max_body=, head_mt=,
   headers_mt=}) */
static int l_parser(lua_State *L) {
  static const char *const kinds[] = {"request", "response", NULL};
  int kind = luaL_checkoption(L, 1, NULL, kinds);
  luaL_checktype(L, 2, LUA_TTABLE);
  Parser *p = lua_newuserdatauv(L, sizeof *p, UV_N - 1);
  memset(p, 0, sizeof *p);
  p->magic = PARSER_MAGIC;
  int ud = lua_gettop(L);
  luaL_setmetatable(L, PARSER_MT);
  http_parser_init(&p->hp, kind == 0 ? HTTP_REQUEST : HTTP_RESPONSE);
  p->hp.data = p;
  p->max_head = (size_t)opt_limit(L, "max_header_size", 8192);
  p->max_headers = (int)opt_limit(L, "max_headers", 100);
  p->max_body = (uint64_t)opt_limit(L, "max_body", LUA_MAXINTEGER);
  lua_getfield(L, 2, "raw_headers");
  p->raw_headers = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 2, "head_mt");
  lua_setiuservalue(L, ud, UV_HEAD_MT);
  lua_getfield(L, 2, "headers_mt");
  lua_setiuservalue(L, ud, UV_HEADERS_MT);
  lua_createtable(L, 4, 0);
  lua_setiuservalue(L, ud, UV_EVENTS);
  return 1;
}

static const luaL_Reg parser_methods[] = {
    {"skip_body", parser_skip_body},
    {"idle", parser_idle},
    {NULL, NULL},
};

static const luaL_Reg parser_meta[] = {
    {"__gc", parser_gc},
    {NULL, NULL},
};

void al_http_parser_open(lua_State *L) {
  al_new_class(L, PARSER_MT, parser_methods, parser_meta);
  lua_createtable(L, (int)(sizeof KEY_NAMES / sizeof *KEY_NAMES), 0);
  for (int i = 0; KEY_NAMES[i]; i++) {
    lua_pushstring(L, KEY_NAMES[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushcclosure(L, parser_feed, 1); /* upvalue 1: KEY_NAMES */
  lua_setfield(L, -2, "feed");
  lua_pop(L, 2);
  lua_pushcfunction(L, l_parser);
  lua_setfield(L, -2, "parser");
  lua_pushcfunction(L, l_headers);
  lua_setfield(L, -2, "headers");
}
