/*
** Declarations shared by the thread files (marshal.c, cfuture.c, threadpool.c, remote.c): byte
** buffers of marshalled values, concurrent futures (completed by any OS thread), the job a worker
** runs, and the fresh Lua states that workers and remote loops run in.
*/
#ifndef ALOOP_THREADS_H
#define ALOOP_THREADS_H

#include "core/internal.h"
#include "util/buffer.h"

#define AL_CFUTURE_MT "aloop.ConcurrentFuture"

/* marshal.c: values as bytes (in an al_Buf, util/buffer.h), from one Lua state to another. */
/*
** Appends the n values from `first` to a new buffer (a userdata pushed on the stack that frees
** it when collected; steal b->p to keep the bytes). Raises a clear error naming the value and
** where it is when one cannot cross. With `fn_first`, the first value must be a Lua function
** without upvalues other than _ENV (sent as bytecode). `what` names the call in errors.
*/
al_Buf *al_marshal(lua_State *L, int first, int n, int fn_first, const char *what);
/* Pushes the values encoded in p[0..len) and returns how many; raises on malformed input. */
int al_unmarshal(lua_State *L, const char *p, size_t len);
/* The same for bytes from outside (aio.thread.decode, fuzzers): refuses functions (bytecode). */
int al_unmarshal_data(lua_State *L, const char *p, size_t len);
/* A fresh Lua state with the standard libraries, package.path/cpath, and aloop loaded. */
lua_State *al_newstate(const char *path, const char *cpath);
/* Copies package.path and package.cpath of L (malloc'd strings, NULL when unset). */
void al_copy_paths(lua_State *L, char **path, char **cpath);
/*
** Runs a marshalled job (function + arguments) in L: on return *out holds the marshalled results
** (returns 1) or the marshalled error (returns 0): an error is [kind, class, message, traceback,
** value] where kind is "aloop" (an aloop error object of that class), "string" or "value".
*/
int al_run_job(lua_State *L, const char *in, size_t inlen, al_Buf *out);
/* A job error with this message, made without a Lua state (replaces *out). */
void al_error_bytes(al_Buf *out, const char *msg);
/* The error value at eidx as job error bytes (its traceback field, if any, goes along). */
void al_error_to_bytes(lua_State *L, int eidx, al_Buf *out);
/* Pushes the error of a failed job (the bytes al_run_job made) as a value to raise. */
void al_push_job_error(lua_State *L, const char *p, size_t len);

/* cfuture.c: concurrent futures. */
enum { AL_CF_PENDING, AL_CF_RUNNING, AL_CF_FINISHED, AL_CF_CANCELLED };

typedef struct al_CFut al_CFut;
typedef void (*al_cf_notify)(al_CFut *cf, void *ud); /* runs on the completing thread */

typedef struct al_CWaiter {
  struct al_CWaiter *next;
  al_cf_notify fn;
  void *ud;
} al_CWaiter;

struct al_CFut {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refs;  /* under mu */
  int state; /* AL_CF_*, under mu */
  int ok;    /* finished with results (1) or an error (0) */
  al_Buf out; /* marshalled results or error, set once finished */
  al_CWaiter *waiters;
  /* Running work that can be cancelled where it runs (a task on a remote loop): cancel_fn runs
     under mu when cancel() is called; cancel_free(ud) once the hook is dropped (outside mu). */
  void (*cancel_fn)(al_CFut *cf, void *ud);
  void (*cancel_free)(void *ud);
  void *cancel_ud;
};

al_CFut *al_cf_new(void);
void al_cf_ref(al_CFut *cf);
void al_cf_unref(al_CFut *cf);
/* PENDING -> RUNNING; returns 0 when it was cancelled first (the work must not run). */
int al_cf_start(al_CFut *cf);
/* Finishes with the bytes in *out (taken); ignored when already cancelled. */
void al_cf_finish(al_CFut *cf, int ok, al_Buf *out);
int al_cf_cancel(al_CFut *cf);
/* Installs the cancel hook of running work (see al_CFut); when cf is done already, frees ud. */
void al_cf_set_canceller(al_CFut *cf, void (*fn)(al_CFut *, void *), void (*free_ud)(void *),
                         void *ud);
/* Pushes a new Lua ConcurrentFuture object that holds a reference to cf. */
void al_cf_push(lua_State *L, al_CFut *cf);
al_CFut *al_cf_check(lua_State *L, int idx);
void al_cfuture_open(lua_State *L, int core);

/* marshal.c, threadpool.c, remote.c: their Lua functions go to the core table at index core. */
void al_marshal_open(lua_State *L, int core);
void al_threadpool_open(lua_State *L, int core);
void al_remote_open(lua_State *L, int core);

#endif
