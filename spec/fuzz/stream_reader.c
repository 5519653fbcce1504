/*
** libFuzzer harness: the StreamReader's framing (src/net/stream_reader.c) through its C API.
** The input picks a limit, a separator, the chunks the stream delivers and a list of reads
** (read, readexactly, readuntil, readline). The harness plays the stream and the reading task
** (a read that must wait would park its task; here, outside a task, it refuses before touching
** the reader, and the harness delivers the next chunk or the end)
** and checks each answer: what a read took is exactly the front of the buffer, its framing is
** right (n bytes, ends at the first separator, ...), errors are aloop's IncompleteReadError or
** LimitOverrunError where they belong, and everything taken plus what is left equals what went
** in, in order.
*/
#define _GNU_SOURCE /* memmem */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "aloop.h"
#include "net/stream_reader.h"

#define CHECK(c) \
  do {           \
    if (!(c)) __builtin_trap(); \
  } while (0)

static const char *const separators[] = {"\n", "\r\n", "ab", "xyz", "a"};

/* The reader asks its source for bytes again: this source delivers whenever a read waits. */
static void on_resume(lua_State *L, void *source) { (void)L, (void)source; }

/* memcmp of n bytes, where n == 0 may come with a NULL pointer (an empty reader). */
static int same(const void *a, const void *b, size_t n) { return n == 0 || memcmp(a, b, n) == 0; }

/* The input, read front to back; out of bytes, every read yields 0. */
typedef struct Input {
  const uint8_t *p;
  size_t n;
} Input;

static unsigned next_byte(Input *in) {
  if (!in->n) return 0;
  in->n--;
  return *in->p++;
}

static lua_State *state(void) {
  static lua_State *L;
  if (!L) {
    L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "aloop", luaopen_aloop, 1);
    lua_getfield(L, -1, "new_event_loop");
    lua_call(L, 0, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.loop");
    lua_settop(L, 0);
  }
  return L;
}

/* Calls reader method `name` with the arguments pushed above the reader (at index 1). */
static int call(lua_State *L, const char *name, int nargs) {
  lua_getfield(L, 1, name);
  lua_insert(L, -nargs - 1);
  lua_pushvalue(L, 1);
  lua_insert(L, -nargs - 1);
  return lua_pcall(L, nargs + 1, 1, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  lua_State *L = state();
  size_t limit = 1 + (size_t)data[0] * 4; /* 1 .. 1021 */
  const char *sep = separators[data[1] % (sizeof separators / sizeof *separators)];
  size_t slen = strlen(sep);
  /* The rest: control bytes (chunk sizes and reads) first, the payload after. */
  size_t rest = size - 3, nctl = rest * data[2] / 256;
  Input ctl = {data + 3, nctl};
  const char *payload = (const char *)data + 3 + nctl;
  size_t plen = rest - nctl, fed = 0;

  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.loop");
  lua_newtable(L); /* the source object the reader keeps */
  al_Reader *r = al_reader_new(L, aloop_toloop(L, -2), -2, -1, limit, on_resume, NULL);
  lua_replace(L, 1);
  lua_settop(L, 1);
  size_t taken = 0; /* bytes reads took (or readline dropped): payload[0, taken) in order */
  int top = lua_gettop(L);

  for (int steps = 0; steps < 4096 && ctl.n; steps++) {
    unsigned kind = next_byte(&ctl) % 4, arg = next_byte(&ctl);
    size_t before = r->buf.len;
    /* the buffer before the read, to check what was taken came from its front */
    lua_pushlstring(L, al_buf_data(&r->buf), before);
    int snap = lua_gettop(L);
    int nargs = 1;
    const char *method;
    if (kind == 0) method = "read", lua_pushinteger(L, arg % 2 ? arg : (lua_Integer)arg * 8);
    else if (kind == 1) method = "readexactly", lua_pushinteger(L, arg);
    else if (kind == 2) method = "readuntil", lua_pushstring(L, sep);
    else method = "readuntil", lua_pushliteral(L, "\n"), lua_pushboolean(L, 1), nargs = 2;
    int eof = r->eof;
    int st = call(L, method, nargs);
    size_t took = before - r->buf.len;
    CHECK(r->buf.len <= before);
    const char *snapp = lua_tostring(L, snap);
    CHECK(same(snapp + took, al_buf_data(&r->buf), r->buf.len)); /* a FIFO */
    CHECK(same(snapp, payload + taken, took)); /* in the order they came */
    taken += took;
    /* Wants more: a read that must wait parks its task, and outside a task it says so before
       touching the reader; the harness then plays the stream delivering. */
    if (st != LUA_OK && lua_type(L, -1) == LUA_TSTRING &&
        strstr(lua_tostring(L, -1), "not inside a task")) {
      CHECK(took == 0 && !eof);
      lua_settop(L, top);
      if (fed < plen) {
        size_t n = 1 + next_byte(&ctl) % 64;
        if (n > plen - fed) n = plen - fed;
        al_reader_feed(L, r, payload + fed, n);
        fed += n;
      } else {
        al_reader_end(L, r);
      }
      continue;
    }
    if (st == LUA_OK) {
      size_t n;
      const char *s = lua_tolstring(L, -1, &n);
      CHECK(s && n == took && same(s, snapp, n));
      if (kind == 0) CHECK(n <= (arg % 2 ? arg : arg * 8u) && (n > 0 || arg == 0 || (eof && before == 0)));
      if (kind == 1) CHECK(n == arg);
      if (kind >= 2) {
        const char *sp = kind == 2 ? sep : "\n";
        size_t sl = kind == 2 ? slen : 1;
        const char *hit = memmem(s, n, sp, sl);
        if (kind == 2 || !eof || hit) CHECK(hit && (size_t)(hit - s) == n - sl);
      }
    } else {
      CHECK(lua_istable(L, -1));
      if (al_error_is(L, -1, "IncompleteReadError")) {
        CHECK(eof && kind != 0 && kind != 3);
        lua_getfield(L, -1, "partial");
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        CHECK(s && n == took && same(s, snapp, n));
        lua_pop(L, 1);
      } else {
        CHECK(al_error_is(L, -1, "LimitOverrunError") && kind >= 2);
        CHECK(kind == 3 || took == 0); /* readuntil leaves the buffer; readline drops the line */
      }
    }
    lua_settop(L, top);
  }
  /* Whatever was not read: deliver the rest, then all taken + the buffer == the payload. */
  if (fed < plen) al_reader_feed(L, r, payload + fed, plen - fed);
  CHECK(taken + r->buf.len == plen);
  CHECK(same(al_buf_data(&r->buf), payload + taken, r->buf.len));
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
