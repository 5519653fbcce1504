/*
** The StreamReader's buffer (stream_reader.h): what a stream delivered and no task took yet.
** Its methods are the C half of streams.lua's StreamReader: each takes what is buffered or, when
** that is not enough, parks the running task on the reader itself (no future, one C call) until
** the source feeds more, ends or fails, and tries again.
** Past the limit the reader is full and the source stops reading (the kernel keeps the rest).
*/
#define _GNU_SOURCE
#include <string.h>

#include "net/stream_reader.h"

enum { RD_SOURCE = 1, /* the stream feeding it (kept alive) */
       RD_LOOP,       /* the loop userdata (keeps it alive) */
       RD_EXC,        /* the error the stream failed with */
       RD_N = RD_EXC };

/*
** The reader at 1 (size and magic number: al_toudata). A StreamReader (streams.lua's object)
** stands for its buffer, `_buffer`, which replaces it at 1: the StreamReader's methods are these
** C functions themselves (no Lua call in between).
*/
static al_Reader *check_rd(lua_State *L, int idx) {
  al_Reader *r = AL_TOUDATA(L, idx, al_Reader, AL_READER_MAGIC);
  if (r) return r;
  if (lua_type(L, idx) == LUA_TTABLE) {
    lua_getfield(L, idx, "_buffer");
    lua_replace(L, idx);
  }
  return AL_CHECKUDATA(L, idx, al_Reader, AL_READER_MAGIC, "aloop.StreamReader");
}

/* Wakes the task parked in a read (if any); it then reads again. A closed loop's tasks may be
   gone (only an open loop keeps its unfinished tasks alive): the reader just forgets it. */
static void wake(lua_State *L, al_Reader *r) {
  al_Task *t = r->waiter;
  r->waiter = NULL;
  if (!r->loop->closed) al_task_wake_parked(L, t);
}

/* The parked task was cancelled: the reader forgets it. */
static void unpark(lua_State *L, al_Park *p, al_Task *t) {
  (void)L, (void)t;
  al_Reader *r = (al_Reader *)((char *)p - offsetof(al_Reader, park));
  r->waiter = NULL;
}

al_Reader *al_reader_new(lua_State *L, al_Loop *loop, int loopidx, int srcidx, size_t limit,
                         al_reader_resume_fn resume, void *source) {
  loopidx = lua_absindex(L, loopidx);
  srcidx = lua_absindex(L, srcidx);
  al_Reader *r = lua_newuserdatauv(L, sizeof *r, RD_N);
  memset(r, 0, sizeof *r);
  r->magic = AL_READER_MAGIC;
  r->limit = limit;
  r->loop = loop;
  r->park.unpark = unpark;
  r->resume = resume;
  r->source = source;
  luaL_setmetatable(L, AL_READER_MT);
  lua_pushvalue(L, srcidx);
  lua_setiuservalue(L, -2, RD_SOURCE);
  lua_pushvalue(L, loopidx);
  lua_setiuservalue(L, -2, RD_LOOP);
  return r;
}

char *al_reader_space(lua_State *L, al_Reader *r, size_t n) {
  if (!al_buf_reserve(&r->buf, n)) luaL_error(L, "not enough memory");
  return al_buf_tail(&r->buf);
}

void al_reader_commit(lua_State *L, al_Reader *r, size_t n) {
  r->buf.len += n;
  if (r->buf.len > r->limit) r->full = 1;
  if (r->waiter) wake(L, r);
}

void al_reader_feed(lua_State *L, al_Reader *r, const char *p, size_t n) {
  memcpy(al_reader_space(L, r, n), p, n);
  al_reader_commit(L, r, n);
}

void al_reader_end(lua_State *L, al_Reader *r) {
  r->eof = 1;
  if (r->waiter) wake(L, r);
}

void al_reader_fail(lua_State *L, int ridx, int eidx) {
  al_Reader *r = lua_touserdata(L, ridx);
  ridx = lua_absindex(L, ridx);
  lua_pushvalue(L, eidx);
  lua_setiuservalue(L, ridx, RD_EXC);
  r->failed = r->eof = 1;
  if (r->waiter) wake(L, r);
}

/* ---------------------------------------------------------------------------------------- */
/* The methods streams.lua calls: each returns the data, or parks the task until there is more. */

/* Raises the error the stream failed with, if any. */
static void check_failed(lua_State *L, al_Reader *r) {
  if (!r->failed) return;
  lua_getiuservalue(L, 1, RD_EXC);
  lua_error(L);
}

/* Pushes n bytes from the front and consumes them; the source reads on once there is room. */
static void take(lua_State *L, al_Reader *r, size_t n) {
  lua_pushlstring(L, al_buf_data(&r->buf), n);
  al_buf_consume(&r->buf, n);
  if (r->full && r->buf.len <= r->limit) {
    r->full = 0;
    r->resume(L, r->source);
  }
}

/*
** Not enough data: parks the running task on the reader (its arguments at 1..top) until the
** source feeds more, ends or fails; k then runs the method again. A full reader resumes its
** source, so a read of more than the limit still completes.
*/
static int wait_data(lua_State *L, al_Reader *r, const char *what, int top, lua_KFunction k) {
  al_Task *t = al_task_parker(L, r->loop, what);
  if (r->waiter) return al_error_raise(L, "Error", "another task is already waiting for incoming data");
  if (r->full) {
    r->full = 0;
    r->resume(L, r->source);
  }
  r->waiter = t;
  return al_task_park(L, t, &r->park, top, k);
}

static int rd_read(lua_State *L);
static int read_k(lua_State *L, int status, lua_KContext top) {
  (void)status;
  al_task_resumed(L, (int)top);
  return rd_read(L);
}

/* rd:read(n): up to n bytes ("" at the end); waits while there are none. */
static int rd_read(lua_State *L) {
  al_Reader *r = check_rd(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  if (r->buf.len == 0) check_failed(L, r); /* what came before the failure is read first */
  if (n == 0) lua_pushliteral(L, "");
  else if (r->buf.len > 0) take(L, r, (size_t)n < r->buf.len ? (size_t)n : r->buf.len);
  else if (r->eof) lua_pushliteral(L, "");
  else return wait_data(L, r, "StreamReader.read", 2, read_k);
  return 1;
}

/* IncompleteReadError with what is left as .partial; the text of `expected` is at index 3. */
static int raise_incomplete(lua_State *L, al_Reader *r, lua_Integer expected) {
  take(L, r, r->buf.len);
  int partial = lua_gettop(L);
  al_error_push(L, "IncompleteReadError",
                lua_pushfstring(L, "%d bytes read on a total of %s expected bytes",
                                (int)lua_rawlen(L, partial),
                                expected < 0 ? "undefined" : lua_tostring(L, 3)));
  lua_pushvalue(L, partial);
  lua_setfield(L, -2, "partial");
  if (expected >= 0) {
    lua_pushinteger(L, expected);
    lua_setfield(L, -2, "expected");
  }
  return lua_error(L);
}

static int rd_readexactly(lua_State *L);
static int readexactly_k(lua_State *L, int status, lua_KContext top) {
  (void)status;
  al_task_resumed(L, (int)top);
  return rd_readexactly(L);
}

/* rd:readexactly(n): n bytes, waiting for them; IncompleteReadError at the end. */
static int rd_readexactly(lua_State *L) {
  al_Reader *r = check_rd(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n >= 0, 2, "readexactly size can not be less than zero");
  lua_settop(L, 2);
  lua_pushvalue(L, 2); /* index 3: n as text for the message */
  lua_tostring(L, 3);
  check_failed(L, r);
  if ((size_t)n <= r->buf.len) take(L, r, (size_t)n);
  else if (r->eof) return raise_incomplete(L, r, n);
  else return wait_data(L, r, "StreamReader.readexactly", 2, readexactly_k);
  return 1;
}

static int raise_overrun(lua_State *L, const char *msg, size_t consumed) {
  al_error_push(L, "LimitOverrunError", msg);
  lua_pushinteger(L, (lua_Integer)consumed);
  lua_setfield(L, -2, "consumed");
  return lua_error(L);
}

static int rd_readuntil(lua_State *L);
static int readuntil_k(lua_State *L, int status, lua_KContext top) {
  (void)status;
  al_task_resumed(L, (int)top);
  return rd_readuntil(L);
}

/*
** rd:readuntil(sep, readline): the data up to and including sep, waiting for it.
** Over the limit: LimitOverrunError (.consumed); readuntil leaves the buffer as it was, readline
** drops the overlong line (up to its "\n" when there is one) so the stream stays usable.
** At the end without sep: readuntil raises IncompleteReadError, readline returns what is left.
*/
static int rd_readuntil(lua_State *L) {
  al_Reader *r = check_rd(L, 1);
  size_t slen;
  const char *sep = luaL_checklstring(L, 2, &slen);
  int readline = lua_toboolean(L, 3);
  luaL_argcheck(L, slen > 0, 2, "Separator should be at least one-byte string");
  check_failed(L, r);
  const char *data = al_buf_data(&r->buf);
  const char *hit = r->buf.len ? memmem(data, r->buf.len, sep, slen) : NULL;
  if (hit) {
    size_t i = (size_t)(hit - data);
    if (i > r->limit) {
      if (readline) al_buf_consume(&r->buf, i + slen), take(L, r, 0);
      return raise_overrun(L, "Separator is found, but chunk is longer than limit", i);
    }
    take(L, r, i + slen);
    return 1;
  }
  if (r->buf.len + 1 > slen && r->buf.len + 1 - slen > r->limit) {
    size_t consumed = r->buf.len + 1 - slen;
    if (readline) al_buf_consume(&r->buf, r->buf.len), take(L, r, 0);
    return raise_overrun(L, "Separator is not found, and chunk exceed the limit", consumed);
  }
  if (!r->eof) return wait_data(L, r, readline ? "StreamReader.readline" : "StreamReader.readuntil",
                                3, readuntil_k);
  if (readline) {
    take(L, r, r->buf.len);
    return 1;
  }
  lua_settop(L, 2);
  lua_pushnil(L);
  return raise_incomplete(L, r, -1);
}

static int rd_wait(lua_State *L);
static int wait_k(lua_State *L, int status, lua_KContext top) {
  (void)status;
  al_task_resumed(L, (int)top);
  return rd_wait(L);
}

/* rd:wait(): returns once the reader holds bytes or the stream ended; takes nothing. */
static int rd_wait(lua_State *L) {
  al_Reader *r = check_rd(L, 1);
  check_failed(L, r);
  if (r->buf.len > 0 || r->eof) return 0;
  return wait_data(L, r, "StreamReader.wait", 1, wait_k);
}

static int rd_at_eof(lua_State *L) {
  al_Reader *r = check_rd(L, 1);
  lua_pushboolean(L, r->eof && r->buf.len == 0);
  return 1;
}

static int rd_buffered(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_rd(L, 1)->buf.len);
  return 1;
}

static int rd_exception(lua_State *L) {
  check_rd(L, 1);
  lua_getiuservalue(L, 1, RD_EXC);
  return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* A reader fed from Lua (the public aio.StreamReader(limit), as asyncio's feed_* methods). */

static void no_source(lua_State *L, void *source) { (void)L, (void)source; }

/* core._reader_new(loop, limit): a reader no stream feeds; feed_data/feed_eof/set_exception do. */
static int l_reader_new(lua_State *L) {
  al_Loop *loop = al_checkloop(L, 1);
  lua_Integer limit = luaL_checkinteger(L, 2);
  luaL_argcheck(L, limit > 0, 2, "limit must be positive");
  al_reader_new(L, loop, 1, 1, (size_t)limit, no_source, NULL);
  return 1;
}

static al_Reader *check_feedable(lua_State *L) {
  al_Reader *r = check_rd(L, 1);
  if (r->eof) al_error_raise(L, "InvalidStateError", "the StreamReader already ended (feed_eof "
                             "or set_exception was called, or its stream ended)");
  return r;
}

/* rd:feed_data(data) */
static int rd_feed_data(lua_State *L) {
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  al_Reader *r = check_feedable(L);
  if (n > 0) al_reader_feed(L, r, p, n);
  return 0;
}

/* rd:feed_eof() */
static int rd_feed_eof(lua_State *L) {
  al_Reader *r = check_rd(L, 1);
  if (!r->eof) al_reader_end(L, r);
  return 0;
}

/* rd:set_exception(err): every read raises err from now on (what is buffered too, as asyncio) */
static int rd_set_exception(lua_State *L) {
  luaL_checkany(L, 2);
  check_rd(L, 1);
  al_reader_fail(L, 1, 2);
  return 0;
}

static int rd_gc(lua_State *L) {
  al_Reader *r = lua_touserdata(L, 1);
  al_buf_free(&r->buf);
  return 0;
}

static const luaL_Reg rd_methods[] = {
    {"read", rd_read},
    {"readexactly", rd_readexactly},
    {"readuntil", rd_readuntil},
    {"wait", rd_wait},
    {"at_eof", rd_at_eof},
    {"buffered", rd_buffered},
    {"exception", rd_exception},
    {"feed_data", rd_feed_data},
    {"feed_eof", rd_feed_eof},
    {"set_exception", rd_set_exception},
    {NULL, NULL},
};

/* reader:readline(): readuntil("\n") that returns what is left at the end and drops an
   overlong line. */
static int rd_readline(lua_State *L) {
  check_rd(L, 1);
  lua_settop(L, 1);
  lua_pushliteral(L, "\n");
  lua_pushboolean(L, 1);
  return rd_readuntil(L);
}

/* reader:readuntil([sep]): sep defaults to "\n". */
static int rd_readuntil_default(lua_State *L) {
  check_rd(L, 1);
  lua_settop(L, 2);
  if (lua_isnil(L, 2)) lua_pushliteral(L, "\n"), lua_replace(L, 2);
  lua_pushboolean(L, 0);
  return rd_readuntil(L);
}

static int read_slow_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status, (void)ctx;
  return 1;
}

/* reader:read([n]): n >= 0 here, in one C call; nil or a negative n (to the end) and bad sizes
   in streams.lua's function, upvalue 1. */
static int rd_read_any(lua_State *L) {
  int isint;
  lua_Integer n = lua_tointegerx(L, 2, &isint);
  if (isint && n >= 0) return rd_read(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_callk(L, lua_gettop(L) - 1, 1, 0, read_slow_k);
  return 1;
}

/* core._stream_reader_methods(read_slow): the StreamReader's read, readline, readuntil,
   readexactly and at_eof, each a C call on the object. */
static int l_stream_reader_methods(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  static const luaL_Reg methods[] = {
      {"readline", rd_readline},
      {"readuntil", rd_readuntil_default},
      {"readexactly", rd_readexactly},
      {"at_eof", rd_at_eof},
      {"exception", rd_exception},
      {"feed_data", rd_feed_data},
      {"feed_eof", rd_feed_eof},
      {"set_exception", rd_set_exception},
      {NULL, NULL},
  };
  luaL_newlib(L, methods);
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, rd_read_any, 1);
  lua_setfield(L, -2, "read");
  return 1;
}

/* core._reader_methods: streams.lua's C half. */
void al_reader_open(lua_State *L, int core) {
  static const luaL_Reg meta[] = {{"__gc", rd_gc}, {NULL, NULL}};
  al_new_class(L, AL_READER_MT, rd_methods, meta);
  lua_setfield(L, core, "_reader_methods");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_reader_new);
  lua_setfield(L, core, "_reader_new");
  lua_pushcfunction(L, l_stream_reader_methods);
  lua_setfield(L, core, "_stream_reader_methods");
}
