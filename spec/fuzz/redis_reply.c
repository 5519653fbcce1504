/*
** libFuzzer harness: the Redis reply reader glue (src/redis/codec.c) fed random bytes in chunks
** of a size the input picks, with commands waiting for replies and pub/sub-style extra replies.
** Any input must complete the waiting futures, fill the extra list or report a protocol error,
** never crash, overflow or leak; the codec is usable again after fail().
*/
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stddef.h>
#include <stdint.h>

int luaopen_aloop(lua_State *L);

static const char setup[] =
    "local aio = require 'aloop'\n"
    "local core = require 'aloop.core'\n"
    "local redis = require 'aloop.redis'\n"
    "local loop = aio.new_event_loop()\n"
    "local codec = core._redis.codec(loop, redis.ReplyError, redis.null)\n"
    "return function(data)\n"
    "  local step = (data:byte(1) or 0) % 64 + 1\n"
    "  local futs = {}\n"
    "  for i = 1, (data:byte(2) or 0) % 5 do futs[i] = codec:send('GET', 'k' .. i) end\n"
    "  local out = {}\n"
    "  for pos = 3, #data, step do\n"
    "    local n, err = codec:feed(data:sub(pos, pos + step - 1), out)\n"
    "    if not n then\n"
    "      assert(err:find('^protocol error'))\n"
    "      codec:fail(aio.ConnectionAbortedError(err))\n"
    "      break\n"
    "    end\n"
    "  end\n"
    "  codec:fail(aio.ConnectionAbortedError('end of input'))\n"
    "  codec:take()\n"
    "  for _, f in ipairs(futs) do assert(f:done()); f:exception() end\n"
    "end\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static lua_State *L;
  static int run_ref;
  if (!L) {
    L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "aloop", luaopen_aloop, 0);
    lua_pop(L, 1);
    if (luaL_dostring(L, setup) != LUA_OK) __builtin_trap();
    run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, run_ref);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) __builtin_trap(); /* the reader must never raise */
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
