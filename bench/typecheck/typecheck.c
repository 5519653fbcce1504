/*
** The userdata type-check schemes aloop could use, side by side for bench/callgrind: one method
** per scheme on the same userdata (`none` does no check: the call's own cost). The winner,
** size + magic number, is al_toudata in src/core/internal.h.
*/
#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>

typedef struct Obj {
  uint32_t magic;
  int x;
  void *pad[6];
} Obj;

#define OBJ_MAGIC 0x6f626a31u
#define OBJ_MT "typecheck.Obj"

static const void *mt_ptr; /* the cached metatable pointer */
static int mt_ref;         /* the metatable's registry ref */

static int push_x(lua_State *L, Obj *o) {
  lua_pushinteger(L, o->x);
  return 1;
}

static int m_checkudata(lua_State *L) { return push_x(L, luaL_checkudata(L, 1, OBJ_MT)); }

static int m_upvalue(lua_State *L) { /* the metatable is upvalue 1 */
  Obj *o = lua_touserdata(L, 1);
  if (!o || !lua_getmetatable(L, 1) || !lua_rawequal(L, -1, lua_upvalueindex(1)))
    return luaL_typeerror(L, 1, OBJ_MT);
  lua_pop(L, 1);
  return push_x(L, o);
}

static int m_pointer(lua_State *L) { /* a metatable pointer cached at open */
  Obj *o = lua_touserdata(L, 1);
  if (!o || !lua_getmetatable(L, 1) || lua_topointer(L, -1) != mt_ptr)
    return luaL_typeerror(L, 1, OBJ_MT);
  lua_pop(L, 1);
  return push_x(L, o);
}

static int m_ref(lua_State *L) { /* the metatable fetched by registry ref */
  Obj *o = lua_touserdata(L, 1);
  if (!o || !lua_getmetatable(L, 1)) return luaL_typeerror(L, 1, OBJ_MT);
  lua_rawgeti(L, LUA_REGISTRYINDEX, mt_ref);
  if (!lua_rawequal(L, -1, -2)) return luaL_typeerror(L, 1, OBJ_MT);
  lua_pop(L, 2);
  return push_x(L, o);
}

static int m_magic(lua_State *L) { /* size + magic number */
  Obj *o = lua_touserdata(L, 1);
  if (!o || lua_rawlen(L, 1) != sizeof(Obj) || o->magic != OBJ_MAGIC)
    return luaL_typeerror(L, 1, OBJ_MT);
  return push_x(L, o);
}

static int m_none(lua_State *L) { return push_x(L, lua_touserdata(L, 1)); }

static int l_new(lua_State *L) {
  Obj *o = lua_newuserdatauv(L, sizeof *o, 1);
  o->magic = OBJ_MAGIC;
  o->x = 1;
  luaL_setmetatable(L, OBJ_MT);
  return 1;
}

int luaopen_typecheck(lua_State *L) {
  static const luaL_Reg methods[] = {{"checkudata", m_checkudata}, {"pointer", m_pointer},
                                     {"ref", m_ref}, {"magic", m_magic}, {"none", m_none},
                                     {NULL, NULL}};
  luaL_newmetatable(L, OBJ_MT);
  mt_ptr = lua_topointer(L, -1);
  lua_pushvalue(L, -1);
  mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  luaL_newlib(L, methods);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, m_upvalue, 1);
  lua_setfield(L, -2, "upvalue");
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_new);
  return 1;
}
