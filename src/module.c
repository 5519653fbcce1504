/*
** Module entry points: luaopen_aloop_core (the C core as `aloop.core`) and luaopen_aloop,
** which also registers the Lua half (the files of lua/aloop, compiled into the library by CMake as
** al_lua_sources) in package.preload and returns the public table from aloop/init.lua.
*/
#include <string.h>

#include "core/internal.h"
#include "http/http.h"
#include "net/net.h"
#include "net/stream_reader.h"
#include "redis/redis.h"
#include "sync/waitlist.h"
#include "threads/threads.h"
#include "workers/workers.h"
#include "tls/tls.h"

typedef struct al_LuaSource {
  const char *name; /* module name, e.g. "aloop.init" */
  const char *file; /* chunk name for tracebacks, e.g. "@lua/aloop/init.lua" */
  const unsigned char *src;
  size_t len;
} al_LuaSource;

extern const al_LuaSource al_lua_sources[]; /* generated: lua_sources.c */

/*
** Every part of the C core, in the order they open: each adds its functions and classes to the
** core table it is given (core.Loop exists before the parts that add loop methods).
*/
typedef void (*al_OpenFn)(lua_State *L, int core);

static const al_OpenFn parts[] = {
    al_errors_open,    /* core/errors.c: error classes, iserror, errno */
    al_log_open,       /* core/log.c */
    al_debug_open,     /* core/debug.c */
    al_loop_open,      /* core/loop.c: core.Loop */
    al_exception_open, /* core/exception.c: loop:set_exception_handler etc. */
    al_handle_open,    /* core/handle.c */
    al_future_open,    /* core/future.c: core.Future */
    al_task_open,      /* core/task.c: core.Task, loop:create_task */
    al_task_stack_open, /* core/task_stack.c: task:get_stack, task:print_stack */
    al_waitlist_open,  /* sync/waitlist.c: core._WaitList for the locks */
    al_queue_open,     /* sync/queue.c: core._Queue, core._queue_methods */
    al_io_open,        /* io/watcher.c: loop:add_reader etc. */
    al_signal_open,    /* io/signal.c: loop:add_signal_handler, core.signal */
    al_process_open,   /* io/process.c */
    al_socket_open,    /* net/socket.c: core.socket */
    al_transport_open, /* net/transport.c: stream and datagram transports */
    al_reader_open,    /* net/stream_reader.c */
    al_server_open,    /* net/server.c */
    al_dns_open,       /* net/dns.c */
    al_tls_open,       /* tls/context.c: core.ssl, SSL errors, core._tls_wrap (tls/filter.c) */
    al_marshal_open,   /* threads/marshal.c */
    al_cfuture_open,   /* threads/cfuture.c: core.ConcurrentFuture */
    al_threadpool_open, /* threads/threadpool.c */
    al_remote_open,    /* threads/remote.c: core.RemoteLoop */
    al_worker_open,    /* workers/worker.c: this process under `aloop --workers` */
    al_http_open,      /* http/: core._http (parser, head serialisers) */
    al_redis_open,     /* redis/codec.c: core._redis (codec, batch) for aloop.redis */
    NULL,
};

int luaopen_aloop_core(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &al_key_state);
  int have = !lua_isnil(L, -1);
  lua_pop(L, 1);
  lua_newtable(L);
  if (!have) {
    al_State *st = lua_newuserdatauv(L, sizeof *st, 0);
    memset(st, 0, sizeof *st);
    st->default_loop_ref = st->coro_mt_ref = LUA_NOREF;
    lua_rawsetp(L, LUA_REGISTRYINDEX, &al_key_state);
    lua_pushboolean(L, 0);
    st->running_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  int core = lua_gettop(L);
  for (const al_OpenFn *open = parts; *open; open++) (*open)(L, core);
  lua_pushliteral(L, ALOOP_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}

aloop_loop *aloop_toloop(lua_State *L, int idx) { return al_toloop(L, idx); }

static int load_source(lua_State *L) {
  const al_LuaSource *s = lua_touserdata(L, lua_upvalueindex(1));
  if (luaL_loadbufferx(L, (const char *)s->src, s->len, s->file, "t") != LUA_OK) return lua_error(L);
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  return 1;
}

int luaopen_aloop(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_aloop_core);
  lua_setfield(L, -2, "aloop.core");
  for (const al_LuaSource *s = al_lua_sources; s->name; s++) {
    lua_pushlightuserdata(L, (void *)s);
    lua_pushcclosure(L, load_source, 1);
    lua_setfield(L, -2, s->name);
  }
  lua_pop(L, 1);
  /* require "aloop.init" through the preload we just set (so it is loaded once) */
  lua_getglobal(L, "require");
  if (lua_isnil(L, -1)) return luaL_error(L, "aloop: open the package library first");
  lua_pushliteral(L, "aloop.init");
  lua_call(L, 1, 1);
  return 1;
}

/*
** `require "aloop.busted"` from a stock lua5.4 that has not required "aloop" yet: no preload
** exists then, and Lua's all-in-one C searcher looks for luaopen_aloop_busted in aloop.so (found
** on package.cpath). Opens aloop (which registers the preloads) and runs the helper's source.
*/
int luaopen_aloop_busted(lua_State *L) {
  luaL_requiref(L, "aloop", luaopen_aloop, 0);
  lua_pop(L, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_getfield(L, -1, "aloop.busted");
  lua_pushliteral(L, "aloop.busted");
  lua_call(L, 1, 1);
  return 1;
}
