/*
** libFuzzer harness of the HTTP parser glue (src/http/parser.c): arbitrary bytes, cut into up to
** three feeds, through a request or response parser with small limits, then EOF. Any crash,
** leak, out-of-bounds access or undefined behaviour is a finding (scripts/fuzz http_parser N).
*/
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <lauxlib.h>
#include <lualib.h>

#include "http/http.h"

static lua_State *L;

static int setup(void) {
  L = luaL_newstate();
  luaL_openlibs(L);
  lua_newtable(L);
  al_http_parser_open(L);
  lua_getfield(L, -1, "parser");
  lua_setglobal(L, "new_parser");
  lua_pop(L, 1);
  return luaL_dostring(L,
    "function fuzz(kind, a, b, c)\n"
    "  local p = new_parser(kind, {max_header_size = 1024, max_headers = 20, max_body = 4096,\n"
    "    head_mt = {}, headers_mt = {}})\n"
    "  if kind == 'response' and #a % 3 == 0 then p:skip_body() end\n"
    "  for _, piece in ipairs {a, b, c} do\n"
    "    local ev, code, desc = p:feed(piece)\n"
    "    for _, e in ipairs(ev) do\n"
    "      if type(e) == 'table' then assert(type(e.headers) == 'table' and e.version) end\n"
    "    end\n"
    "    if code then assert(type(desc) == 'string') return end\n"
    "  end\n"
    "  p:feed(nil)\n"
    "end\n");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready = -1;
  if (ready < 0) ready = setup();
  if (ready != 0 || size < 2) return 0;
  size_t cut1 = size > 2 ? 2 + data[0] % (size - 1) : 2;
  if (cut1 > size) cut1 = size;
  size_t cut2 = cut1 + (size - cut1) / 2;
  lua_getglobal(L, "fuzz");
  lua_pushstring(L, data[1] & 1 ? "response" : "request");
  lua_pushlstring(L, (const char *)data + 2, cut1 - 2);
  lua_pushlstring(L, (const char *)data + cut1, cut2 - cut1);
  lua_pushlstring(L, (const char *)data + cut2, size - cut2);
  if (lua_pcall(L, 4, 0, 0) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    __builtin_trap();
  }
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
