/*
** aloop: an asyncio-style runtime for Lua 5.4 on libev. Public C API for host programs.
**
** Open the module in a host lua_State with luaL_requiref(L, "aloop", luaopen_aloop, 0) (or let
** `require "aloop"` find it). Everything else is reached through Lua values: loops, futures and
** tasks are userdata of the module. The functions below are the stable C entry points.
*/
#ifndef ALOOP_H
#define ALOOP_H

#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ALOOP_VERSION "0.1.0"

typedef struct al_Loop aloop_loop;

/* A C function posted to a loop: it runs on the loop's thread with the loop's lua_State. */
typedef void (*aloop_cfn)(lua_State *L, void *ud);

/* Opens the module: pushes the `aloop` table (the same table `require "aloop"` returns). */
int luaopen_aloop(lua_State *L);

/* Opens the C core alone (module `aloop.core`); luaopen_aloop uses it. */
int luaopen_aloop_core(lua_State *L);

/* The loop behind the loop userdata at `idx`, or NULL when it is not a loop. */
aloop_loop *aloop_toloop(lua_State *L, int idx);

/*
** Posts fn(L, ud) to run on the loop's thread at its next iteration, waking it if it sleeps.
** Safe from any OS thread and from signal-free contexts; never blocks for long.
** Returns 0, or -1 when the loop is closed (fn will not run; the caller still owns ud).
*/
int aloop_call_threadsafe(aloop_loop *loop, aloop_cfn fn, void *ud);

#ifdef __cplusplus
}
#endif

#endif
