/*
** The StreamReader's buffer (streams.lua's StreamReader holds one): the bytes a stream delivered
** that no task has taken yet, the limit past which the stream stops reading, the end of the
** stream or the error it failed with, and the one reading task parked on it. It belongs
** to no transport kind: any stream feeds it with the functions below (the stream transport for
** sockets and pipes, and through the transport's filter seam, TLS).
*/
#ifndef ALOOP_STREAM_READER_H
#define ALOOP_STREAM_READER_H

#include "core/internal.h"
#include "util/buffer.h"

#define AL_READER_MT "aloop.StreamBuffer"

/* Tells the stream feeding a reader that it wants bytes again (it was full and a task took
   data, or a task waits for more than the limit): the stream starts reading again. */
typedef void (*al_reader_resume_fn)(lua_State *L, void *source);

#define AL_READER_MAGIC 0x72656164u /* "read" (al_toudata) */

typedef struct al_Reader {
  uint32_t magic; /* AL_READER_MAGIC */
  al_Buf buf;
  size_t limit;          /* past this many buffered bytes the reader is full */
  al_Loop *loop;
  al_Park park;          /* a task waits on the reader itself (no future): see al_task_park */
  al_Task *waiter;       /* the task parked in a read, or NULL */
  unsigned char full;    /* past the limit: the source stops reading until resume() */
  unsigned char eof;     /* the stream ended: nothing more comes */
  unsigned char failed;  /* the stream failed: reading raises its error */
  al_reader_resume_fn resume;
  void *source;
} al_Reader;

/*
** Pushes a new reader of the loop at loopidx, fed by the object at srcidx (the reader keeps it
** alive, so `source`, its C side, stays valid); resume(L, source) is called when the reader
** wants bytes again.
*/
al_Reader *al_reader_new(lua_State *L, al_Loop *loop, int loopidx, int srcidx, size_t limit,
                         al_reader_resume_fn resume, void *source);

/* Feeding, for sources. Either write up to n bytes at al_reader_space (raises when out of
   memory) and count them with al_reader_commit, or copy them in with al_reader_feed. Both wake
   the waiting task; afterwards r->full says whether the source must stop reading. */
char *al_reader_space(lua_State *L, al_Reader *r, size_t n);
void al_reader_commit(lua_State *L, al_Reader *r, size_t n);
void al_reader_feed(lua_State *L, al_Reader *r, const char *p, size_t n);
void al_reader_end(lua_State *L, al_Reader *r); /* end of stream */
void al_reader_fail(lua_State *L, int ridx, int eidx); /* the stream failed with that error */

void al_reader_open(lua_State *L, int core);

#endif
