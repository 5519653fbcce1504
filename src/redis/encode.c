/*
** RESP command encoding: a command (name and arguments: strings or numbers) becomes
** "*N\r\n$len\r\narg\r\n..." appended to a growable buffer, with no intermediate Lua strings.
** A Batch (core._redis.batch()) is such a buffer filled by r:pipeline()/r:transaction() and
** handed to a connection's codec in one piece.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/redis.h"

#define BATCH_MT "aloop.redis.Batch"

void al_redis_buf_free(al_RedisBuf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* Room for n more bytes, or a Lua memory error. */
static char *buf_reserve(lua_State *L, al_RedisBuf *b, size_t n) {
  if (b->cap - b->len < n) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) luaL_error(L, "aloop.redis: not enough memory");
    b->p = p;
    b->cap = cap;
  }
  return b->p + b->len;
}

void al_redis_buf_append(lua_State *L, al_RedisBuf *b, const char *s, size_t n) {
  memcpy(buf_reserve(L, b, n), s, n);
  b->len += n;
}

/* Writes "<prefix><n>\r\n" at p; returns the bytes written (at most 24). */
static size_t put_header(char *p, char prefix, unsigned long long n) {
  char digits[21];
  size_t nd = 0;
  do {
    digits[nd++] = (char)('0' + n % 10);
    n /= 10;
  } while (n);
  size_t k = 0;
  p[k++] = prefix;
  while (nd) p[k++] = digits[--nd];
  p[k++] = '\r';
  p[k++] = '\n';
  return k;
}

static void put_bulk(lua_State *L, al_RedisBuf *b, const char *s, size_t n) {
  char *p = buf_reserve(L, b, n + 26);
  size_t k = put_header(p, '$', n);
  memcpy(p + k, s, n);
  p[k + n] = '\r';
  p[k + n + 1] = '\n';
  b->len += k + n + 2;
}

void al_redis_encode(lua_State *L, al_RedisBuf *b, int first, int last) {
  size_t start = b->len;
  b->len += put_header(buf_reserve(L, b, 24), '*', (unsigned long long)(last - first + 1));
  for (int i = first; i <= last; i++) {
    size_t n;
    const char *s;
    char num[48];
    switch (lua_type(L, i)) {
    case LUA_TSTRING:
      s = lua_tolstring(L, i, &n);
      break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, i)) n = (size_t)snprintf(num, sizeof num, LUA_INTEGER_FMT, lua_tointeger(L, i));
      else n = (size_t)snprintf(num, sizeof num, "%.17g", (double)lua_tonumber(L, i));
      s = num;
      break;
    default:
      b->len = start; /* nothing of a bad command stays in the buffer */
      luaL_error(L, "aloop.redis: argument %d of %s must be a string or a number, got %s",
                 i - first, lua_tostring(L, first), luaL_typename(L, i));
      return;
    }
    put_bulk(L, b, s, n);
  }
}

/* ---------------------------------------------------------------------------------------- */
/* Batches. */

/* The batch at idx (size and magic number: al_toudata). */
al_RedisBatch *al_redis_checkbatch(lua_State *L, int idx) {
  return AL_CHECKUDATA(L, idx, al_RedisBatch, AL_REDIS_BATCH_MAGIC, BATCH_MT);
}

/* batch:add(name, ...): appends one command; returns the number of commands. */
static int batch_add(lua_State *L) {
  al_RedisBatch *bt = al_redis_checkbatch(L, 1);
  if (lua_type(L, 2) != LUA_TSTRING) luaL_argerror(L, 2, "a command name expected");
  al_redis_encode(L, &bt->buf, 2, lua_gettop(L));
  lua_pushinteger(L, ++bt->count);
  return 1;
}

static int batch_count(lua_State *L) {
  lua_pushinteger(L, al_redis_checkbatch(L, 1)->count);
  return 1;
}

static int batch_clear(lua_State *L) {
  al_RedisBatch *bt = al_redis_checkbatch(L, 1);
  al_redis_buf_free(&bt->buf);
  bt->count = 0;
  return 0;
}

static int l_batch(lua_State *L) {
  al_RedisBatch *bt = lua_newuserdatauv(L, sizeof *bt, 0);
  memset(bt, 0, sizeof *bt);
  bt->magic = AL_REDIS_BATCH_MAGIC;
  luaL_setmetatable(L, BATCH_MT);
  return 1;
}

static const luaL_Reg batch_methods[] = {
    {"add", batch_add},
    {"count", batch_count},
    {"clear", batch_clear},
    {NULL, NULL},
};

static const luaL_Reg batch_meta[] = {
    {"__gc", batch_clear},
    {NULL, NULL},
};

void al_redis_batch_open(lua_State *L) {
  al_new_class(L, BATCH_MT, batch_methods, batch_meta);
  lua_pop(L, 2);
  lua_pushcfunction(L, l_batch);
  lua_setfield(L, -2, "batch");
}
