/*
** Declarations of the Redis glue (src/redis/): RESP command encoding into growable buffers
** (encode.c) and the per-connection codec (codec.c): hiredis's reply reader building Lua values,
** the FIFO of futures waiting for replies, and the pending write buffer of one connection.
*/
#ifndef ALOOP_REDIS_H
#define ALOOP_REDIS_H

#include "core/internal.h"

/* A growable byte buffer holding encoded commands. */
typedef struct al_RedisBuf {
  char *p;
  size_t len, cap;
} al_RedisBuf;

/* encode.c */
void al_redis_buf_free(al_RedisBuf *b);
void al_redis_buf_append(lua_State *L, al_RedisBuf *b, const char *s, size_t n);
/* Appends the command made of the values at stack indices first..last (name, args...). */
void al_redis_encode(lua_State *L, al_RedisBuf *b, int first, int last);
#define AL_REDIS_BATCH_MAGIC 0x62746368u /* "btch" (al_toudata) */

typedef struct al_RedisBatch {
  al_RedisBuf buf;
  int count;      /* commands in buf */
  uint32_t magic; /* AL_REDIS_BATCH_MAGIC */
} al_RedisBatch;
al_RedisBatch *al_redis_checkbatch(lua_State *L, int idx);
void al_redis_batch_open(lua_State *L); /* sets `batch` in the table on top */

/* codec.c */
void al_redis_codec_open(lua_State *L); /* sets `codec` in the table on top */

/* module.c's parts table: core._redis = { codec = ..., batch = ... } in the core table. */
void al_redis_open(lua_State *L, int core);

#endif
