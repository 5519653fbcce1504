/*
** Error objects (API.md §4): tables whose metatable is their class. A class is a table with
** `__name`, `__index` (itself), `__tostring` and `parent`; instances carry `message` and
** `traceback`. The class tree lives in the registry so C code can raise CancelledError etc.
*/
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "core/internal.h"

const char al_key_errors = 0;

static const char *const class_tree[][2] = {
    {"Error", NULL},
    {"CancelledError", "Error"},
    {"TimeoutError", "Error"},
    {"InvalidStateError", "Error"},
    {"KeyboardInterrupt", "Error"},
    {"IncompleteReadError", "Error"},
    {"LimitOverrunError", "Error"},
    {"QueueEmpty", "Error"},
    {"QueueFull", "Error"},
    {"QueueShutDown", "Error"},
    {"BrokenBarrierError", "Error"},
    {"ExceptionGroup", "Error"},
    {"OSError", "Error"},
    {"ConnectionError", "OSError"},
    {"ConnectionResetError", "ConnectionError"},
    {"ConnectionRefusedError", "ConnectionError"},
    {"ConnectionAbortedError", "ConnectionError"},
    {"BrokenPipeError", "ConnectionError"},
    {"SendfileNotAvailableError", "Error"},
    {NULL, NULL},
};

static int error_tostring(lua_State *L) {
  const char *name = "Error", *msg = NULL;
  if (lua_getmetatable(L, 1)) {
    if (lua_getfield(L, -1, "__name") == LUA_TSTRING) name = lua_tostring(L, -1);
  }
  if (lua_getfield(L, 1, "message") != LUA_TNIL) msg = luaL_tolstring(L, -1, NULL);
  if (msg && *msg)
    lua_pushfstring(L, "%s: %s", name, msg);
  else
    lua_pushstring(L, name);
  return 1;
}

/* Pushes the class table named `cls`. */
static void push_class(lua_State *L, const char *cls) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &al_key_errors);
  lua_getfield(L, -1, cls);
  lua_remove(L, -2);
}

void al_error_push(lua_State *L, const char *cls, const char *msg) {
  lua_createtable(L, 0, 3);
  if (msg) {
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
  }
  luaL_traceback(L, L, NULL, 1);
  lua_setfield(L, -2, "traceback");
  push_class(L, cls);
  lua_setmetatable(L, -2);
}

int al_error_raise(lua_State *L, const char *cls, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const char *msg = lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  al_error_push(L, cls, msg);
  return lua_error(L);
}

/* Is the value at idx an instance of class `cls` (or of a subclass)? */
int al_error_is(lua_State *L, int idx, const char *cls) {
  if (!lua_istable(L, idx) || !lua_getmetatable(L, idx)) return 0;
  push_class(L, cls);
  int found = 0;
  for (int depth = 0; depth < 32 && !found; depth++) {
    if (lua_rawequal(L, -1, -2)) {
      found = 1;
      break;
    }
    if (lua_getfield(L, -2, "parent") != LUA_TTABLE) {
      lua_pop(L, 1);
      break;
    }
    lua_replace(L, -3);
  }
  lua_pop(L, 2);
  return found;
}

/*
** Is the value at idx an instance of the class at clsidx (or of a subclass), or an
** ExceptionGroup with such a member (groups nest at most `depth` deep)?
*/
static int is_instance(lua_State *L, int idx, int clsidx, int depth) {
  idx = lua_absindex(L, idx);
  int found = 0, top = lua_gettop(L);
  if (lua_istable(L, idx) && lua_getmetatable(L, idx)) {
    for (int up = 0; up < 32; up++) {
      if (lua_rawequal(L, -1, clsidx)) {
        found = 1;
        break;
      }
      if (lua_getfield(L, -1, "parent") != LUA_TTABLE) break;
      lua_remove(L, -2);
    }
  }
  lua_settop(L, top);
  if (found || depth <= 0 || !al_error_is(L, idx, "ExceptionGroup")) return found;
  if (lua_getfield(L, idx, "exceptions") == LUA_TTABLE) {
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n && !found; i++) {
      lua_rawgeti(L, -1, i);
      found = is_instance(L, -1, clsidx, depth - 1);
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top);
  return found;
}

/* aio.iserror(err, cls): cls is a class table (default aio.Error); an ExceptionGroup is a cls
   when one of its members is. */
static int l_iserror(lua_State *L) {
  lua_settop(L, 2);
  if (lua_isnil(L, 2)) push_class(L, "Error");
  else lua_pushvalue(L, 2);
  lua_pushboolean(L, is_instance(L, 1, 3, 16));
  return 1;
}

/* cls(msg [, fields]) or cls{message=..., ...}: a new instance with a traceback. */
static int class_call(lua_State *L) {
  lua_settop(L, 3);
  if (lua_istable(L, 2)) {
    lua_pushvalue(L, 2);
  } else {
    lua_createtable(L, 0, 3);
    if (!lua_isnil(L, 2)) {
      lua_pushvalue(L, 2);
      lua_setfield(L, -2, "message");
    }
    if (lua_istable(L, 3)) { /* extra fields */
      lua_pushnil(L);
      while (lua_next(L, 3)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_settable(L, -4);
      }
    }
  }
  if (lua_getfield(L, -1, "traceback") == LUA_TNIL) {
    lua_pop(L, 1);
    luaL_traceback(L, L, NULL, 1);
    lua_setfield(L, -2, "traceback");
  } else {
    lua_pop(L, 1);
  }
  lua_pushvalue(L, 1);
  lua_setmetatable(L, -2);
  return 1;
}

/* cls:extend(name): a subclass usable with iserror. */
static int class_extend(lua_State *L);

static void make_class(lua_State *L, const char *name, int parentidx) {
  if (parentidx) parentidx = lua_absindex(L, parentidx);
  lua_createtable(L, 0, 6);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, class_extend);
  lua_setfield(L, -2, "extend");
  if (parentidx) {
    lua_pushvalue(L, parentidx);
    lua_setfield(L, -2, "parent");
  }
  /* Calling a class makes an instance: the class's own metatable has __call. */
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, class_call);
  lua_setfield(L, -2, "__call");
  if (parentidx) { /* methods added to a parent are visible from subclasses */
    lua_pushvalue(L, parentidx);
    lua_setfield(L, -2, "__index");
  }
  lua_setmetatable(L, -2);
}

static int class_extend(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *name = luaL_checkstring(L, 2);
  make_class(L, name, 1);
  return 1;
}

/* OSError objects: the subclass follows errno (asyncio's ConnectionRefusedError etc.). */
static const char *errno_class(int err) {
  switch (err) {
  case ECONNREFUSED: return "ConnectionRefusedError";
  case ECONNRESET: return "ConnectionResetError";
  case EPIPE: case ESHUTDOWN: return "BrokenPipeError";
  case ECONNABORTED: return "ConnectionAbortedError";
  default: return "OSError";
  }
}

void al_oserror_push(lua_State *L, int err, const char *what) {
  const char *se = strerror(err);
  lua_pushfstring(L, "[Errno %d] %s%s%s", err, se, what ? ": " : "", what ? what : "");
  al_error_push(L, errno_class(err), lua_tostring(L, -1));
  lua_remove(L, -2);
  lua_pushinteger(L, err);
  lua_setfield(L, -2, "errno");
  lua_pushstring(L, se);
  lua_setfield(L, -2, "strerror");
}

int al_oserror_raise(lua_State *L, int err, const char *what) {
  al_oserror_push(L, err, what);
  return lua_error(L);
}

/* core.errno: the errno values Lua code compares with (err.errno == core.errno.EADDRINUSE). */
static const struct {
  const char *name;
  int value;
} errno_names[] = {
#define E(x) {#x, x}
    E(EPERM),        E(ENOENT),       E(EINTR),         E(EIO),           E(EBADF),
    E(ECHILD),       E(EAGAIN),       E(EWOULDBLOCK),   E(ENOMEM),        E(EACCES),
    E(EEXIST),       E(ENOTDIR),      E(EISDIR),        E(EINVAL),        E(ENFILE),
    E(EMFILE),       E(ENOSPC),       E(EPIPE),         E(ENOTSOCK),      E(EMSGSIZE),
    E(EPROTOTYPE),   E(ENOPROTOOPT),  E(EPROTONOSUPPORT), E(EOPNOTSUPP),  E(EAFNOSUPPORT),
    E(EADDRINUSE),   E(EADDRNOTAVAIL), E(ENETDOWN),     E(ENETUNREACH),   E(ECONNABORTED),
    E(ECONNRESET),   E(ENOBUFS),      E(EISCONN),       E(ENOTCONN),      E(ESHUTDOWN),
    E(ETIMEDOUT),    E(ECONNREFUSED), E(EHOSTDOWN),     E(EHOSTUNREACH),  E(EALREADY),
    E(EINPROGRESS),  E(EPROTO),       E(ECANCELED),
#undef E
    {NULL, 0},
};

/* The error classes (in the registry and as fields of core), core.iserror and core.errno. */
void al_errors_open(lua_State *L, int core) {
  lua_newtable(L);
  for (int i = 0; class_tree[i][0]; i++) {
    if (class_tree[i][1]) lua_getfield(L, -1, class_tree[i][1]);
    else lua_pushnil(L);
    make_class(L, class_tree[i][0], class_tree[i][1] ? -1 : 0);
    lua_remove(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, core, class_tree[i][0]);
    lua_setfield(L, -2, class_tree[i][0]);
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &al_key_errors);
  lua_pushcfunction(L, l_iserror);
  lua_setfield(L, core, "iserror");
  lua_createtable(L, 0, (int)(sizeof errno_names / sizeof *errno_names));
  for (int i = 0; errno_names[i].name; i++) {
    lua_pushinteger(L, errno_names[i].value);
    lua_setfield(L, -2, errno_names[i].name);
  }
  lua_setfield(L, core, "errno");
}
