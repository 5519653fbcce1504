/*
** Marshalling: copying values from one Lua state to another (worker threads, remote loops,
** worker processes). What crosses is nil, booleans, numbers, strings and tables of these (no
** cycles; a table reached twice is copied twice), and, where a job needs one, a Lua function
** without upvalues other than _ENV, as string.dump bytecode. Anything else is a clear error that
** names the value and where it sits. Also the fresh worker states and how a job runs in one.
*/
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "threads/threads.h"

enum { T_NIL = 'n', T_TRUE = 'T', T_FALSE = 'F', T_INT = 'i', T_FLT = 'd', T_STR = 's',
       T_TABLE = 't', T_END = 'e', T_FUNC = 'f' };

#define MAX_DEPTH 200
#define MARSHAL_BUFFER_MT "aloop.MarshalBuffer" /* al_marshal's result: freed by __gc */

static int buf_gc(lua_State *L) {
  al_buf_free(lua_touserdata(L, 1));
  return 0;
}

static void buf_add(lua_State *L, al_Buf *b, const void *p, size_t n) {
  if (!al_buf_append(b, p, n)) luaL_error(L, "aloop: out of memory while marshalling");
}

static void buf_byte(lua_State *L, al_Buf *b, char c) { buf_add(L, b, &c, 1); }

static void buf_size(lua_State *L, al_Buf *b, size_t n) { buf_add(L, b, &n, sizeof n); }

/* The encoder: where we are (for errors) and the tables being copied (for cycles). */
typedef struct Enc {
  lua_State *L;
  al_Buf *b;
  int seen;        /* stack index of a table: tables on the current path */
  const char *what;
  char path[256];  /* "argument 2", then ".field" / "[3]" as we descend */
  size_t plen;
  int depth;
} Enc;

static int enc_fail(Enc *e, const char *fmt, const char *detail) {
  lua_State *L = e->L;
  e->path[e->plen < sizeof e->path ? e->plen : sizeof e->path - 1] = '\0';
  lua_pushfstring(L, fmt, e->what, e->path, detail);
  return lua_error(L);
}

static void enc_value(Enc *e, int idx);

/* Appends ".key" or "[key]" to the path; returns the old length. */
static size_t path_push(Enc *e, int kidx) {
  lua_State *L = e->L;
  size_t old = e->plen, room = sizeof e->path - e->plen;
  if (room > 1) {
    int n;
    if (lua_type(L, kidx) == LUA_TSTRING) n = snprintf(e->path + e->plen, room, ".%s", lua_tostring(L, kidx));
    else if (lua_isinteger(L, kidx))
      n = snprintf(e->path + e->plen, room, "[%lld]", (long long)lua_tointeger(L, kidx));
    else n = snprintf(e->path + e->plen, room, "[%s]", luaL_typename(L, kidx));
    e->plen += (size_t)n < room ? (size_t)n : room - 1;
  }
  return old;
}

static void enc_table(Enc *e, int idx) {
  lua_State *L = e->L;
  if (lua_rawgetp(L, e->seen, lua_topointer(L, idx)) != LUA_TNIL)
    enc_fail(e, "%s: %s%s", " is a table that contains itself (a cycle); tables that cross to "
                            "another thread or process must not have cycles");
  lua_pop(L, 1);
  if (++e->depth > MAX_DEPTH) enc_fail(e, "%s: %s%s", " is nested too deeply to cross");
  luaL_checkstack(L, 6, "marshal");
  lua_pushboolean(L, 1);
  lua_rawsetp(L, e->seen, lua_topointer(L, idx));
  buf_byte(L, e->b, T_TABLE);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int k = lua_gettop(L) - 1;
    size_t old = path_push(e, k);
    int kt = lua_type(L, k);
    if (kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN)
      enc_fail(e, "%s: %s%s", " is a table key that cannot cross (only strings, numbers and "
                              "booleans can be keys)");
    enc_value(e, k);
    enc_value(e, k + 1);
    e->plen = old;
    lua_pop(L, 1);
  }
  buf_byte(L, e->b, T_END);
  lua_pushnil(L);
  lua_rawsetp(L, e->seen, lua_topointer(L, idx));
  e->depth--;
}

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  buf_add(L, ud, p, sz);
  return 0;
}

/* A Lua function without upvalues other than _ENV, as its bytecode. */
static void enc_function(Enc *e, int idx) {
  lua_State *L = e->L;
  if (lua_iscfunction(L, idx))
    enc_fail(e, "%s: %s%s", " is a C function; only Lua functions can run in another thread");
  const char *name;
  for (int i = 1; (name = lua_getupvalue(L, idx, i)) != NULL; i++) {
    lua_pop(L, 1);
    if (strcmp(name, "_ENV") != 0) {
      lua_Debug ar;
      lua_pushvalue(L, idx);
      lua_getinfo(L, ">S", &ar);
      lua_pushfstring(L, " (a function defined at %s:%d) uses the upvalue '%s'; a function that "
                         "runs in another thread may use globals and its arguments but no "
                         "local variables of enclosing code",
                      ar.short_src, ar.linedefined, *name ? name : "?");
      enc_fail(e, "%s: %s%s", lua_tostring(L, -1));
    }
  }
  buf_byte(L, e->b, T_FUNC);
  size_t at = e->b->len;
  buf_size(L, e->b, 0);
  lua_pushvalue(L, idx);
  lua_dump(L, dump_writer, e->b, 0);
  lua_pop(L, 1);
  size_t len = e->b->len - at - sizeof(size_t);
  memcpy(e->b->p + at, &len, sizeof len);
}

static void enc_value(Enc *e, int idx) {
  lua_State *L = e->L;
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
    case LUA_TNIL: buf_byte(L, e->b, T_NIL); break;
    case LUA_TBOOLEAN: buf_byte(L, e->b, lua_toboolean(L, idx) ? T_TRUE : T_FALSE); break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        buf_byte(L, e->b, T_INT);
        buf_add(L, e->b, &i, sizeof i);
      } else {
        lua_Number d = lua_tonumber(L, idx);
        buf_byte(L, e->b, T_FLT);
        buf_add(L, e->b, &d, sizeof d);
      }
      break;
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      buf_byte(L, e->b, T_STR);
      buf_size(L, e->b, n);
      buf_add(L, e->b, s, n);
      break;
    }
    case LUA_TTABLE: enc_table(e, idx); break;
    default: {
      const char *tn = luaL_typename(L, idx);
      lua_pushfstring(L, " is a %s; only nil, booleans, numbers, strings and tables of these can "
                         "cross to another thread or process",
                      tn);
      enc_fail(e, "%s: %s%s", lua_tostring(L, -1));
    }
  }
}

al_Buf *al_marshal(lua_State *L, int first, int n, int fn_first, const char *what) {
  first = lua_absindex(L, first);
  al_Buf *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, MARSHAL_BUFFER_MT);
  lua_newtable(L);
  Enc e = {L, b, lua_gettop(L), what, "", 0, 0};
  for (int i = 0; i < n; i++) {
    int idx = first + i;
    if (fn_first && i == 0) {
      e.plen = (size_t)snprintf(e.path, sizeof e.path, "the function");
      if (lua_type(L, idx) != LUA_TFUNCTION) {
        lua_pushfstring(L, " expected, got %s", luaL_typename(L, idx));
        enc_fail(&e, "%s: %s%s", lua_tostring(L, -1));
      }
      enc_function(&e, idx);
      continue;
    }
    e.plen = (size_t)snprintf(e.path, sizeof e.path, fn_first ? "argument %d" : "value %d",
                              fn_first ? i : i + 1);
    enc_value(&e, idx);
  }
  lua_pop(L, 1);
  return b;
}

/* ---------------------------------------------------------------------------------------- */
/* Decoding */

typedef struct Dec {
  lua_State *L;
  const char *p, *end;
  int depth;     /* tables open around the value being decoded (bounded like the encoder's) */
  int allow_fn;  /* bytecode is loaded only from bytes this process encoded for a job */
} Dec;

static void dec_need(Dec *d, size_t n) {
  if ((size_t)(d->end - d->p) < n) luaL_error(d->L, "aloop: malformed marshalled data");
}

static int dec_value(Dec *d) {
  lua_State *L = d->L;
  luaL_checkstack(L, 4, "unmarshal");
  dec_need(d, 1);
  char tag = *d->p++;
  switch (tag) {
    case T_NIL: lua_pushnil(L); break;
    case T_TRUE: lua_pushboolean(L, 1); break;
    case T_FALSE: lua_pushboolean(L, 0); break;
    case T_INT: {
      lua_Integer i;
      dec_need(d, sizeof i);
      memcpy(&i, d->p, sizeof i);
      d->p += sizeof i;
      lua_pushinteger(L, i);
      break;
    }
    case T_FLT: {
      lua_Number x;
      dec_need(d, sizeof x);
      memcpy(&x, d->p, sizeof x);
      d->p += sizeof x;
      lua_pushnumber(L, x);
      break;
    }
    case T_FUNC:
      if (!d->allow_fn) luaL_error(L, "aloop: malformed marshalled data (a function)");
      /* fall through */
    case T_STR: {
      size_t n;
      dec_need(d, sizeof n);
      memcpy(&n, d->p, sizeof n);
      d->p += sizeof n;
      dec_need(d, n);
      if (tag == T_STR) {
        lua_pushlstring(L, d->p, n);
      } else if (luaL_loadbufferx(L, d->p, n, "=function", "b") != LUA_OK) {
        lua_error(L); /* lua_load set its first upvalue (_ENV, if any) to the globals */
      }
      d->p += n;
      break;
    }
    case T_TABLE:
      if (++d->depth > MAX_DEPTH) luaL_error(L, "aloop: marshalled data nested too deeply");
      lua_newtable(L);
      for (;;) {
        dec_need(d, 1);
        if (*d->p == T_END) {
          d->p++;
          break;
        }
        dec_value(d);
        if (lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1)))
          luaL_error(L, "aloop: malformed marshalled data (a nil or NaN table key)");
        dec_value(d);
        lua_rawset(L, -3);
      }
      d->depth--;
      break;
    default: luaL_error(L, "aloop: malformed marshalled data");
  }
  return 1;
}

static int unmarshal(lua_State *L, const char *p, size_t len, int allow_fn) {
  Dec d = {L, p, p + len, 0, allow_fn};
  int n = 0;
  while (d.p < d.end) {
    dec_value(&d);
    n++;
  }
  return n;
}

int al_unmarshal(lua_State *L, const char *p, size_t len) { return unmarshal(L, p, len, 1); }

/* Data from outside (aio.thread.decode): values only, never bytecode to load. */
int al_unmarshal_data(lua_State *L, const char *p, size_t len) { return unmarshal(L, p, len, 0); }

/* ---------------------------------------------------------------------------------------- */
/* Worker states and jobs */

void al_copy_paths(lua_State *L, char **path, char **cpath) {
  *path = *cpath = NULL;
  if (lua_getglobal(L, "package") == LUA_TTABLE) {
    if (lua_getfield(L, -1, "path") == LUA_TSTRING) *path = strdup(lua_tostring(L, -1));
    if (lua_getfield(L, -2, "cpath") == LUA_TSTRING) *cpath = strdup(lua_tostring(L, -1));
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
}

static int newstate_p(lua_State *L) {
  const char *path = lua_touserdata(L, 1), *cpath = lua_touserdata(L, 2);
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  if (path) {
    lua_pushstring(L, path);
    lua_setfield(L, -2, "path");
  }
  if (cpath) {
    lua_pushstring(L, cpath);
    lua_setfield(L, -2, "cpath");
  }
  luaL_requiref(L, "aloop", luaopen_aloop, 0);
  return 0;
}

lua_State *al_newstate(const char *path, const char *cpath) {
  lua_State *L = luaL_newstate();
  if (!L) return NULL;
  lua_pushcfunction(L, newstate_p);
  lua_pushlightuserdata(L, (void *)path);
  lua_pushlightuserdata(L, (void *)cpath);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    lua_close(L);
    return NULL;
  }
  return L;
}

/* A job error [string, nil, msg, nil] made without a Lua state (out is replaced). */
void al_error_bytes(al_Buf *out, const char *msg) {
  al_buf_free(out);
  size_t n = strlen(msg), k = 6;
  char *q = out->p = malloc(16 + 2 * sizeof(size_t) + n);
  if (!q) return; /* an empty buffer reads as "no error value": nil */
  *q++ = T_STR;
  memcpy(q, &k, sizeof k), q += sizeof k;
  memcpy(q, "string", k), q += k;
  *q++ = T_NIL;
  *q++ = T_STR;
  memcpy(q, &n, sizeof n), q += sizeof n;
  memcpy(q, msg, n), q += n;
  *q++ = T_NIL;
  out->len = out->cap = (size_t)(q - out->p);
}

/* The message handler of a job: {err, traceback} (the traceback is of the worker's stack). */
static int job_msgh(lua_State *L) {
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  luaL_traceback(L, L, NULL, 1);
  lua_rawseti(L, -2, 2);
  return 1;
}

/* Protected: unmarshal and call the job, then marshal its results into *out. */
static int job_call(lua_State *L) {
  al_Buf *out = lua_touserdata(L, 1);
  const char *in = lua_touserdata(L, 2);
  size_t inlen = (size_t)lua_tointeger(L, 3);
  lua_settop(L, 0);
  int n = al_unmarshal(L, in, inlen);
  lua_call(L, n - 1, LUA_MULTRET);
  al_Buf *b = al_marshal(L, 1, lua_gettop(L), 0, "aloop: a result of the function");
  *out = *b;
  memset(b, 0, sizeof *b);
  return 0;
}

/* Protected: marshals [kind, class, message, traceback] for the {err, traceback} at 1. */
static int marshal_error_p(lua_State *L) {
  al_Buf *out = lua_touserdata(L, 2);
  lua_settop(L, 1);
  lua_rawgeti(L, 1, 1); /* 2: err */
  lua_rawgeti(L, 1, 2); /* 3: traceback */
  if (lua_type(L, 2) == LUA_TSTRING) {
    lua_pushliteral(L, "string");
    lua_pushnil(L);
    lua_pushvalue(L, 2);
  } else if (al_error_is(L, 2, "Error")) {
    lua_pushliteral(L, "aloop");
    lua_getmetatable(L, 2);
    lua_getfield(L, -1, "__name");
    lua_remove(L, -2);
    if (lua_getfield(L, 2, "traceback") == LUA_TSTRING) lua_replace(L, 3);
    else lua_pop(L, 1);
    lua_getfield(L, 2, "message");
    if (!lua_isnil(L, -1) && !lua_isstring(L, -1)) {
      luaL_tolstring(L, -1, NULL);
      lua_remove(L, -2);
    }
  } else {
    lua_pushliteral(L, "value");
    lua_pushnil(L);
    luaL_tolstring(L, 2, NULL);
  }
  lua_pushvalue(L, 3);
  al_Buf *b = al_marshal(L, 4, 4, 0, "error");
  *out = *b;
  memset(b, 0, sizeof *b);
  return 0;
}

void al_error_to_bytes(lua_State *L, int eidx, al_Buf *out) {
  eidx = lua_absindex(L, eidx);
  memset(out, 0, sizeof *out);
  lua_pushcfunction(L, marshal_error_p);
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, eidx);
  lua_rawseti(L, -2, 1);
  lua_pushlightuserdata(L, out);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    lua_pop(L, 1);
    al_error_bytes(out, "aloop: the error could not be sent to another thread");
  }
}

int al_run_job(lua_State *L, const char *in, size_t inlen, al_Buf *out) {
  int top = lua_gettop(L);
  memset(out, 0, sizeof *out);
  lua_pushcfunction(L, job_msgh);
  lua_pushcfunction(L, job_call);
  lua_pushlightuserdata(L, out);
  lua_pushlightuserdata(L, (void *)in);
  lua_pushinteger(L, (lua_Integer)inlen);
  int st = lua_pcall(L, 3, 0, top + 1);
  if (st == LUA_OK) {
    lua_settop(L, top);
    return 1;
  }
  al_buf_free(out);
  if (!lua_istable(L, -1)) { /* out of memory: no handler ran */
    lua_createtable(L, 2, 0);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
  }
  lua_pushcfunction(L, marshal_error_p);
  lua_insert(L, -2);
  lua_pushlightuserdata(L, out);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK)
    al_error_bytes(out, "aloop: the error raised in the worker could not be sent back");
  lua_settop(L, top);
  return 0;
}

/* Pushes the job error: an aloop error object of its class, or the message with the traceback. */
void al_push_job_error(lua_State *L, const char *p, size_t len) {
  int top = lua_gettop(L);
  al_unmarshal(L, p, len);
  lua_settop(L, top + 4);
  const char *kind = lua_tostring(L, top + 1);
  const char *tb = lua_tostring(L, top + 4);
  if (kind && strcmp(kind, "aloop") == 0) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &al_key_errors);
    lua_pushvalue(L, top + 2);
    if (lua_rawget(L, -2) != LUA_TTABLE) {
      lua_pop(L, 1);
      lua_getfield(L, -1, "Error");
    }
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, top + 3);
    lua_setfield(L, -2, "message");
    if (tb) {
      lua_pushfstring(L, "[in another thread or process] %s", tb);
      lua_setfield(L, -2, "traceback");
    }
    lua_pushvalue(L, -2);
    lua_setmetatable(L, -2);
  } else {
    const char *msg = lua_tostring(L, top + 3);
    if (tb) lua_pushfstring(L, "%s\n[in another thread or process] %s", msg ? msg : "?", tb);
    else lua_pushstring(L, msg ? msg : "?");
  }
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Lua: aio.thread.encode(...) -> string, aio.thread.decode(s) -> ... (what crosses, as bytes) */

static int l_encode(lua_State *L) {
  al_Buf *b = al_marshal(L, 1, lua_gettop(L), 0, "aloop.thread.encode");
  lua_pushlstring(L, b->p ? b->p : "", b->len);
  return 1;
}

static int l_encode_call(lua_State *L) {
  al_Buf *b = al_marshal(L, 1, lua_gettop(L), 1, "aloop.thread.encode_call");
  lua_pushlstring(L, b->p ? b->p : "", b->len);
  return 1;
}

static int l_decode(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_settop(L, 1);
  return al_unmarshal_data(L, s, n);
}

static const luaL_Reg buf_meta[] = {
    {"__gc", buf_gc},
    {NULL, NULL},
};

void al_marshal_open(lua_State *L, int core) {
  al_new_class(L, MARSHAL_BUFFER_MT, NULL, buf_meta);
  lua_pop(L, 2);
  lua_pushcfunction(L, l_encode);
  lua_setfield(L, core, "_encode");
  lua_pushcfunction(L, l_encode_call);
  lua_setfield(L, core, "_encode_call");
  lua_pushcfunction(L, l_decode);
  lua_setfield(L, core, "_decode");
}
