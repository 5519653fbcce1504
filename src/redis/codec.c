/*
** The codec of one Redis connection (core._redis.codec(loop, ReplyError, null)): the pending
** write buffer (commands encoded by send() until the flush takes them), the FIFO of futures
** waiting for replies, and hiredis's reply reader building Lua values directly. feed() parses
** a chunk and completes every future whose reply is complete, all in C: no Lua call per reply.
** A FIFO entry is one future and a count: 1 for a command, N for a batch (a pipeline), whose
** future gets a table of the N replies (with field n). A future that is done already (its task
** was cancelled or timed out) still consumes its reply: the connection stays in step.
*/
#include <stdlib.h>
#include <string.h>

#include <hiredis/read.h>

#include "redis/redis.h"

#define CODEC_MT "aloop.redis.Codec"

/* Uservalue slots of a codec. */
enum {
  UV_LOOP = 1, /* the loop userdata */
  UV_WAITERS,  /* ring of waiting futures: slot i at [i + 1] */
  UV_OBJS,     /* arrays being built, by nesting depth: [d + 1] */
  UV_ERRCLS,   /* the ReplyError class */
  UV_NULL,     /* redis.null (a nil inside an array) */
  UV_BATCH,    /* the replies of the batch at the head of the FIFO */
  UV_N = UV_BATCH
};

/* Stack slots of feed(): the codec and its arguments, then the uservalues it uses. */
enum { S_CODEC = 1, S_DATA, S_OUT, S_WAITERS, S_OBJS, S_ERRCLS, S_NULL, S_VALUE };

#define CODEC_MAGIC 0x636f6463u /* "codc" (al_toudata) */

typedef struct Codec {
  uint32_t magic; /* CODEC_MAGIC */
  redisReader *rd;
  al_Loop *loop;
  lua_State *L;  /* set while feed() runs: the reader's callbacks build values on its stack */
  al_RedisBuf wbuf;
  int *counts;   /* ring of replies expected by each waiter */
  int cap, head, n;
  int got;       /* replies collected for the batch at the head */
  int maxdepth;  /* deepest array slot used since the last top-level reply */
  unsigned char flush_pending; /* send() asked for a flush that take() has not done yet */
  unsigned char top_array;     /* the reply being finished is an array (its value is in OBJS) */
  unsigned char top_error;     /* the reply just finished is an error reply */
} Codec;

/* The codec a method is called on (size and magic number: al_toudata). */
static Codec *check_codec(lua_State *L) {
  return AL_CHECKUDATA(L, 1, Codec, CODEC_MAGIC, CODEC_MT);
}

/* ---------------------------------------------------------------------------------------- */
/* Reader callbacks: each builds one value on c->L's stack and puts it where it belongs. */

static int task_depth(const redisReadTask *t) {
  int d = 0;
  while (t->parent) {
    d++;
    t = t->parent;
  }
  return d;
}

/* Places the value on top: into its parent array, or in S_VALUE for a top-level reply. */
static void *place(const redisReadTask *task) {
  Codec *c = task->privdata;
  lua_State *L = c->L;
  if (!task->parent) {
    lua_replace(L, S_VALUE);
    return c;
  }
  lua_rawgeti(L, S_OBJS, task_depth(task->parent) + 1);
  lua_insert(L, -2);
  lua_rawseti(L, -2, task->idx + 1);
  lua_pop(L, 1);
  return c;
}

/* An error reply: a ReplyError whose code is the first word ("WRONGTYPE", "ERR", ...). */
static void push_reply_error(lua_State *L, const char *s, size_t len) {
  lua_createtable(L, 0, 3);
  lua_pushlstring(L, s, len);
  lua_setfield(L, -2, "message");
  size_t k = 0;
  while (k < len && ((s[k] >= 'A' && s[k] <= 'Z') || (s[k] >= '0' && s[k] <= '9') || s[k] == '_'))
    k++;
  if (k > 0 && (k == len || s[k] == ' ')) lua_pushlstring(L, s, k);
  else lua_pushliteral(L, "ERR");
  lua_setfield(L, -2, "code");
  lua_pushvalue(L, S_ERRCLS);
  lua_setmetatable(L, -2);
}

static void *create_string(const redisReadTask *task, char *s, size_t len) {
  Codec *c = task->privdata;
  if (task->type == REDIS_REPLY_ERROR) {
    push_reply_error(c->L, s, len);
    if (!task->parent) c->top_error = 1;
  } else {
    lua_pushlstring(c->L, s, len);
  }
  return place(task);
}

static void *create_array(const redisReadTask *task, int elements) {
  Codec *c = task->privdata;
  lua_State *L = c->L;
  int d = task_depth(task);
  /* the size is only a hint: a peer announcing a billion elements must send them first */
  lua_createtable(L, elements < 1024 ? (elements > 0 ? elements : 0) : 1024, 0);
  lua_pushvalue(L, -1);
  lua_rawseti(L, S_OBJS, d + 1);
  if (d + 1 > c->maxdepth) c->maxdepth = d + 1;
  if (!task->parent) c->top_array = 1;
  return place(task);
}

static void *create_integer(const redisReadTask *task, long long v) {
  Codec *c = task->privdata;
  lua_pushinteger(c->L, (lua_Integer)v);
  return place(task);
}

static void *create_nil(const redisReadTask *task) {
  Codec *c = task->privdata;
  if (task->parent) lua_pushvalue(c->L, S_NULL);
  else lua_pushnil(c->L);
  return place(task);
}

static void free_object(void *obj) { (void)obj; /* Lua values: the collector frees them */ }

static redisReplyObjectFunctions reader_fns = {
    create_string, create_array, create_integer, create_nil, free_object,
};

static void new_reader(lua_State *L, Codec *c) {
  if (c->rd) redisReaderFree(c->rd);
  c->rd = redisReaderCreateWithFunctions(&reader_fns);
  if (!c->rd) luaL_error(L, "aloop.redis: not enough memory");
  c->rd->privdata = c;
}

/* ---------------------------------------------------------------------------------------- */
/* The FIFO of waiters. */

/* Appends the future at fidx expecting `count` replies. STACK: codec at 1. */
static void enqueue(lua_State *L, Codec *c, int fidx, int count) {
  fidx = lua_absindex(L, fidx);
  lua_getiuservalue(L, 1, UV_WAITERS);
  if (c->n == c->cap) { /* grow the ring, keeping the order from slot 0 */
    int cap = c->cap ? c->cap * 2 : 64;
    int *counts = malloc(sizeof *counts * (size_t)cap);
    if (!counts) luaL_error(L, "aloop.redis: not enough memory");
    lua_createtable(L, cap, 0);
    for (int i = 0; i < c->n; i++) {
      int slot = (c->head + i) & (c->cap - 1);
      counts[i] = c->counts[slot];
      lua_rawgeti(L, -2, slot + 1);
      lua_rawseti(L, -2, i + 1);
    }
    free(c->counts);
    c->counts = counts;
    c->cap = cap;
    c->head = 0;
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, UV_WAITERS);
    lua_remove(L, -2);
  }
  int slot = (c->head + c->n) & (c->cap - 1);
  c->counts[slot] = count;
  lua_pushvalue(L, fidx);
  lua_rawseti(L, -2, slot + 1);
  c->n++;
  lua_pop(L, 1);
}

/* Forgets the head entry. waiters: the index of the waiters table. */
static void dequeue(lua_State *L, Codec *c, int waiters) {
  lua_pushnil(L);
  lua_rawseti(L, waiters, c->head + 1);
  c->head = (c->head + 1) & (c->cap - 1);
  c->n--;
}

/* Pushes a new future of the codec's loop, queued for `count` replies. */
static void push_waiter(lua_State *L, Codec *c, int count) {
  lua_getiuservalue(L, 1, UV_LOOP);
  al_future_new(L, c->loop, -1);
  lua_remove(L, -2);
  enqueue(L, c, -1, count);
}

/* Pushes whether the caller must schedule a flush (the first command since the last one). */
static void push_first(lua_State *L, Codec *c) {
  lua_pushboolean(L, !c->flush_pending);
  c->flush_pending = 1;
}

/* codec:send(name, ...): encodes the command; returns its future and whether to flush. */
static int codec_send(lua_State *L) {
  Codec *c = check_codec(L);
  if (lua_type(L, 2) != LUA_TSTRING) luaL_argerror(L, 2, "a command name expected");
  al_redis_encode(L, &c->wbuf, 2, lua_gettop(L));
  push_waiter(L, c, 1);
  push_first(L, c);
  return 2;
}

/* codec:write(name, ...): encodes a command whose replies nobody waits for (they go to feed's
   `out`: pub/sub); returns whether to flush. */
static int codec_write(lua_State *L) {
  Codec *c = check_codec(L);
  if (lua_type(L, 2) != LUA_TSTRING) luaL_argerror(L, 2, "a command name expected");
  al_redis_encode(L, &c->wbuf, 2, lua_gettop(L));
  push_first(L, c);
  return 1;
}

/* codec:send_batch(batch): moves the batch's commands in; one future for all replies. */
static int codec_send_batch(lua_State *L) {
  Codec *c = check_codec(L);
  al_RedisBatch *bt = al_redis_checkbatch(L, 2);
  if (bt->count == 0) luaL_argerror(L, 2, "an empty batch");
  al_redis_buf_append(L, &c->wbuf, bt->buf.p, bt->buf.len);
  push_waiter(L, c, bt->count);
  bt->buf.len = 0;
  bt->count = 0;
  push_first(L, c);
  return 2;
}

/* codec:take(): the bytes to write (nil when none); the flush is done. */
static int codec_take(lua_State *L) {
  Codec *c = check_codec(L);
  c->flush_pending = 0;
  if (c->wbuf.len == 0) return 0;
  lua_pushlstring(L, c->wbuf.p, c->wbuf.len);
  c->wbuf.len = 0;
  if (c->wbuf.cap > (1u << 20)) al_redis_buf_free(&c->wbuf); /* after a huge pipeline */
  return 1;
}

/* Hands the reply in S_VALUE to the head waiter. */
static void dispatch(lua_State *L, Codec *c) {
  int count = c->counts[c->head];
  lua_rawgeti(L, S_WAITERS, c->head + 1);
  if (count == 1) {
    dequeue(L, c, S_WAITERS);
    al_Future *f = al_tofuture(L, -1);
    if (f && f->state == AL_PENDING) {
      if (c->top_error) al_future_set_exception(L, f, -1, S_VALUE, 0);
      else al_future_set_result(L, f, -1, S_VALUE, 1);
    }
    lua_pop(L, 1);
    return;
  }
  if (c->got == 0) {
    lua_createtable(L, count, 1);
    lua_setiuservalue(L, S_CODEC, UV_BATCH);
  }
  lua_getiuservalue(L, S_CODEC, UV_BATCH); /* STACK: waiter, replies */
  lua_pushvalue(L, S_VALUE);
  lua_rawseti(L, -2, ++c->got);
  if (c->got == count) {
    lua_pushinteger(L, count);
    lua_setfield(L, -2, "n");
    dequeue(L, c, S_WAITERS);
    c->got = 0;
    lua_pushnil(L);
    lua_setiuservalue(L, S_CODEC, UV_BATCH);
    al_Future *f = al_tofuture(L, -2);
    if (f && f->state == AL_PENDING) al_future_set_result(L, f, -2, -1, 1);
  }
  lua_pop(L, 2);
}

/*
** codec:feed(data [, out]): parses data and completes the waiters of every complete reply.
** Replies nobody waits for (pub/sub messages) are appended to `out`. Returns how many went to
** `out`, or nil and a message when the stream is not RESP (the connection must be dropped).
*/
static int codec_feed(lua_State *L) {
  Codec *c = check_codec(L);
  size_t len;
  const char *data = luaL_checklstring(L, S_DATA, &len);
  lua_settop(L, S_OUT);
  lua_getiuservalue(L, S_CODEC, UV_WAITERS);
  lua_getiuservalue(L, S_CODEC, UV_OBJS);
  lua_getiuservalue(L, S_CODEC, UV_ERRCLS);
  lua_getiuservalue(L, S_CODEC, UV_NULL);
  lua_pushnil(L); /* S_VALUE */
  if (redisReaderFeed(c->rd, data, len) != REDIS_OK) luaL_error(L, "aloop.redis: not enough memory");
  int nout = 0;
  c->L = L;
  for (;;) {
    void *reply = NULL;
    c->top_error = 0;
    if (redisReaderGetReply(c->rd, &reply) != REDIS_OK) {
      c->L = NULL;
      lua_pushnil(L);
      lua_pushfstring(L, "protocol error: %s", c->rd->errstr);
      return 2;
    }
    if (!reply) break;
    if (c->top_array) { /* its value was kept in OBJS while it was being filled */
      c->top_array = 0;
      lua_rawgeti(L, S_OBJS, 1);
      lua_replace(L, S_VALUE);
      for (int d = 1; d <= c->maxdepth; d++) {
        lua_pushnil(L);
        lua_rawseti(L, S_OBJS, d);
      }
      c->maxdepth = 0;
    }
    if (c->n > 0) {
      dispatch(L, c);
    } else if (!lua_isnil(L, S_OUT)) {
      lua_pushvalue(L, S_VALUE);
      lua_rawseti(L, S_OUT, ++nout);
    } else {
      c->L = NULL;
      lua_pushnil(L);
      lua_pushliteral(L, "protocol error: a reply that no command asked for");
      return 2;
    }
  }
  c->L = NULL;
  lua_pushinteger(L, nout);
  return 1;
}

/*
** codec:fail(err): the connection is gone. Every waiter still pending gets err, unsent commands
** are dropped and the reader starts afresh for the next connection.
*/
static int codec_fail(lua_State *L) {
  Codec *c = check_codec(L);
  lua_settop(L, 2);
  lua_getiuservalue(L, 1, UV_WAITERS);
  while (c->n > 0) {
    lua_rawgeti(L, 3, c->head + 1);
    dequeue(L, c, 3);
    al_Future *f = al_tofuture(L, -1);
    if (f && f->state == AL_PENDING) al_future_set_exception(L, f, -1, 2, 0);
    lua_pop(L, 1);
  }
  c->got = 0;
  c->wbuf.len = 0;
  c->top_array = c->top_error = 0;
  c->maxdepth = 0;
  lua_pushnil(L);
  lua_setiuservalue(L, 1, UV_BATCH);
  lua_newtable(L);
  lua_setiuservalue(L, 1, UV_OBJS);
  new_reader(L, c);
  return 0;
}

/* codec:pending(): commands (or batches) sent or queued whose replies have not all come. */
static int codec_pending(lua_State *L) {
  lua_pushinteger(L, check_codec(L)->n);
  return 1;
}

static int codec_gc(lua_State *L) {
  Codec *c = lua_touserdata(L, 1);
  if (c->rd) redisReaderFree(c->rd);
  c->rd = NULL;
  al_redis_buf_free(&c->wbuf);
  free(c->counts);
  c->counts = NULL;
  c->n = c->cap = 0;
  return 0;
}

/* core._redis.codec(loop, ReplyError, null) */
static int l_codec(lua_State *L) {
  al_Loop *loop = al_checkloop(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 3);
  Codec *c = lua_newuserdatauv(L, sizeof *c, UV_N);
  memset(c, 0, sizeof *c);
  c->magic = CODEC_MAGIC;
  c->loop = loop;
  luaL_setmetatable(L, CODEC_MT);
  lua_insert(L, 1); /* STACK: codec, loop, ReplyError, null */
  new_reader(L, c);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, 1, UV_LOOP);
  lua_newtable(L);
  lua_setiuservalue(L, 1, UV_WAITERS);
  lua_newtable(L);
  lua_setiuservalue(L, 1, UV_OBJS);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, 1, UV_ERRCLS);
  lua_pushvalue(L, 4);
  lua_setiuservalue(L, 1, UV_NULL);
  lua_settop(L, 1);
  return 1;
}

static const luaL_Reg codec_methods[] = {
    {"send", codec_send},
    {"send_batch", codec_send_batch},
    {"write", codec_write},
    {"take", codec_take},
    {"feed", codec_feed},
    {"fail", codec_fail},
    {"pending", codec_pending},
    {NULL, NULL},
};

static const luaL_Reg codec_meta[] = {
    {"__gc", codec_gc},
    {NULL, NULL},
};

void al_redis_codec_open(lua_State *L) {
  al_new_class(L, CODEC_MT, codec_methods, codec_meta);
  lua_pop(L, 2);
  lua_pushcfunction(L, l_codec);
  lua_setfield(L, -2, "codec");
}

void al_redis_open(lua_State *L, int core) {
  lua_newtable(L);
  al_redis_codec_open(L);
  al_redis_batch_open(L);
  lua_setfield(L, core, "_redis"); /* private: aio.redis is the Lua module */
}
