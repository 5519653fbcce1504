/*
** Anchors: keep Lua values alive while C holds them (timers in the heap, unfinished tasks).
** A dense Lua array plus a C free list of slot numbers, so putting, fetching and dropping are
** array-part accesses (no hashing), unlike luaL_ref's table-threaded free list.
*/
#include <stdlib.h>

#include "core/internal.h"

void al_anchors_init(lua_State *L, al_Anchors *a) {
  lua_newtable(L);
  a->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  a->free = NULL;
  a->nfree = a->capfree = 0;
  a->top = 0;
  a->count = 0;
}

void al_anchors_free(lua_State *L, al_Anchors *a) {
  luaL_unref(L, LUA_REGISTRYINDEX, a->ref);
  a->ref = LUA_NOREF;
  free(a->free);
  a->free = NULL;
  a->nfree = a->capfree = a->top = a->count = 0;
}

/* Pops the value on top and anchors it; returns its slot (> 0). */
int al_anchor(lua_State *L, al_Anchors *a) {
  int slot = a->nfree > 0 ? a->free[--a->nfree] : ++a->top;
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->ref);
  lua_insert(L, -2);
  lua_rawseti(L, -2, slot);
  lua_pop(L, 1);
  a->count++;
  return slot;
}

void al_anchor_push(lua_State *L, al_Anchors *a, int slot) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->ref);
  lua_rawgeti(L, -1, slot);
  lua_remove(L, -2);
}

/* Forgets the value in slot (the slot is reused later). */
void al_unanchor(lua_State *L, al_Anchors *a, int slot) {
  if (a->ref == LUA_NOREF || slot <= 0) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->ref);
  lua_pushnil(L);
  lua_rawseti(L, -2, slot);
  lua_pop(L, 1);
  if (a->nfree == a->capfree) {
    int ncap = a->capfree ? a->capfree * 2 : 64;
    int *nf = realloc(a->free, (size_t)ncap * sizeof *nf);
    if (!nf) return; /* the slot is lost, not the value: harmless */
    a->free = nf;
    a->capfree = ncap;
  }
  a->free[a->nfree++] = slot;
  a->count--;
}
